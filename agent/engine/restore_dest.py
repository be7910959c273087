"""Where each restored node goes, and the checks on the way there; which
nodes are wanted (:class:`IncludeMatcher`).

All path handling of a restore is here, so the rules that keep a hostile
tree from writing outside the target are in one place:

* **the name gate** (:meth:`Destinations.name_for`): a stored name becomes a
  path component only through ``paths.safe_name`` (``""``, ``.``, ``..``, a
  separator or NUL are refused, names the destination cannot hold are
  escaped), and a second entry of the same name in a directory is refused;
  onto a case-insensitive volume, names that differ only in case get a
  ``~N`` suffix;
* **the way there** (:meth:`Destinations.safe_dir`): a directory on the way
  that is a symbolic link owned by another user is never followed; links
  owned by root or by the restoring user are followed, but under a target
  only when they resolve inside it (Windows junctions are held to the same
  rule).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import secrets
import stat as statmod
from collections.abc import Callable, Iterable

from agent.engine import paths as pathmap
from agent.engine.errors import UnsafeName

TEMP_PREFIX = b".cairn-restore-"
_OS_SEP = os.fsencode(os.sep)
_JUNCTION = 0xA0000003  # IO_REPARSE_TAG_MOUNT_POINT (stat has it on Windows only)

#: issue(kind, repository path, message, error)
IssueSink = Callable[..., None]


def _comparable(real: bytes) -> bytes:
    """A resolved path as compared for containment (Windows: no ``\\\\?\\``
    prefix, case folded)."""
    return os.path.normcase(pathmap.strip_extended_bytes(real))


def _euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else 0


class Destinations:
    """Repository paths of one snapshot mapped to destinations on this machine.

    ``target`` is ``b""`` for an in-place restore. ``issue`` reports
    refused and renamed names (see ``_Restore.issue``).
    """

    def __init__(self, target: bytes, src: pathmap.Flavour, dst: pathmap.Flavour, issue: IssueSink):
        self.target = target
        self.src = src  # the snapshot's paths
        self.dst = dst  # this machine's
        self.issue = issue
        self.windows_in_place = not target and dst.windows
        self.fold_case = bool(target) and pathmap.target_folds_case()
        self._dests: dict[bytes, bytes] = {}  # repository path -> destination
        self._dirs_ready: set[bytes] = set()
        self._real_target = b""  # the target with its symbolic links resolved

    def prepare_target(self) -> None:
        if self.target:
            os.makedirs(self.target, exist_ok=True)  # the target itself is trusted
            self._real_target = _comparable(os.path.realpath(self.target))

    def __getitem__(self, path: bytes) -> bytes:
        return self._dests[path]

    def get(self, path: bytes) -> bytes | None:
        return self._dests.get(path)

    # --- names ---------------------------------------------------------------------
    def name_for(
        self, raw: bytes, base: bytes, seen: set[bytes], taken: dict[str, int]
    ) -> bytes | None:
        """The destination name of entry ``raw`` of directory ``base``, or
        None (reported as ``unsafe-name``) when it must not be restored.
        ``seen`` and ``taken`` belong to the directory being listed."""
        try:
            name = pathmap.safe_name(raw, self.src, self.dst)
            if raw in seen:
                # Restored in turn, `link -> /etc` and a directory
                # `link/` would write through the link.
                raise UnsafeName("a second entry with this name in its directory", name=raw)
        except UnsafeName as exc:
            shown = base + b"/" + pathmap.printable_name(raw).encode()
            self.issue("unsafe-name", shown, f"not restored: {exc}", True)
            return None
        seen.add(raw)
        if self.fold_case:
            name = self._unique_name(name, taken, base + b"/" + raw)
        return name

    def _unique_name(self, name: bytes, taken: dict[str, int], path: bytes) -> bytes:
        """Onto a case-insensitive volume: ``Readme`` after ``README`` (nodes
        are sorted by bytes) becomes ``Readme~2``, warned, instead of
        overwriting it."""
        key = pathmap.case_key(name)
        if key not in taken:
            taken[key] = 1
            return name
        stem, dot, ext = name.rpartition(b".")
        if not stem:
            stem, dot, ext = name, b"", b""
        n = taken[key]
        while True:
            n += 1
            new = stem + b"~" + str(n).encode() + dot + ext
            if pathmap.case_key(new) not in taken:
                break
        taken[key] = n
        taken[pathmap.case_key(new)] = 1
        shown = new.decode("utf-8", "backslashreplace")
        self.issue("renamed", path, f"another name differs only in case: restored as {shown}")
        return new

    def place(self, parent: bytes | None, path: bytes, name: bytes) -> bytes | None:
        """Record and return where ``path`` goes; None, in place on Windows,
        for a drive or share itself and the levels above a share (``/C``,
        ``/UNC/srv/share``)."""
        if self.windows_in_place:
            depth = path.count(b"/")
            native = pathmap.to_native(path, self.dst)
            if native is None or depth <= (3 if path.startswith(b"/UNC/") else 1):
                return None
            dest = pathmap.long_path(os.fsencode(native), self.dst)
        else:
            dest = pathmap.join_native(parent, name, self.dst)
        self._dests[path] = dest
        return dest

    def temp_beside(self, dest: bytes) -> bytes:
        name = TEMP_PREFIX + secrets.token_hex(6).encode()
        return pathmap.join_native(pathmap.dirname_native(dest, self.dst), name, self.dst)

    # --- the way there -----------------------------------------------------------------
    def ensure_parent(self, path: bytes) -> None:
        self.safe_dir(pathmap.dirname_native(self[path], self.dst))

    def safe_dir(self, directory: bytes) -> None:
        """Make ``directory`` (below the target) exist, refusing to pass
        through a symlink that belongs to another user: restoring in place as
        root must not follow a link a user planted (``~/Documents ->
        /etc``) and write outside their files. Links owned by root or by us
        (``/home -> /data/home``) are followed, as the kernel's
        protected_symlinks rule does. Under a target, a link is followed only
        if it resolves inside the target (checked once per directory, not per
        file)."""
        if directory in self._dirs_ready:
            return
        plain = pathmap.strip_extended_bytes(directory)
        current = pathmap.drive_root(plain, self.dst) if self.windows_in_place else self.target
        for part in plain[len(current) :].split(self.dst.sep):
            if not part:
                continue
            current = pathmap.join_native(current, part, self.dst)
            if current in self._dirs_ready:
                continue
            self._check_step(current)
            self._dirs_ready.add(current)

    def _check_step(self, current: bytes) -> None:
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            try:
                os.mkdir(current, 0o700)
            except FileExistsError:
                pass
            st = os.lstat(current)
        # A Windows junction leads elsewhere like a link (lstat shows a directory).
        junction = getattr(st, "st_reparse_tag", 0) == _JUNCTION
        if statmod.S_ISLNK(st.st_mode) or junction:
            if st.st_uid not in (0, _euid()):
                raise OSError(
                    errno.ELOOP, "a directory on the way is another user's symbolic link", current
                )
            if self.target and not self._inside_target(current):
                raise OSError(
                    errno.ELOOP,
                    "a directory on the way is a symbolic link leading out of the target",
                    current,
                )
            if not os.path.isdir(current):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", current)
        elif not statmod.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", current)

    def _inside_target(self, path: bytes) -> bool:
        real = _comparable(os.path.realpath(path))
        root = self._real_target
        return real == root or real.startswith(root.rstrip(_OS_SEP) + _OS_SEP)


class IncludeMatcher:
    """Include patterns select nodes by their original absolute path:
    a pattern without ``/`` matches a name anywhere (``*.docx``); one with
    ``/`` matches a path (``/home/ana/Documents``, ``/home/*/Mail``).
    A selected directory selects everything under it. Patterns for a
    Windows snapshot may be written natively (``C:\\Users\\ana``) and match
    case-insensitively."""

    def __init__(self, patterns: Iterable[str], flavour: pathmap.Flavour = pathmap.POSIX):
        self.fold = flavour.case_insensitive
        self.patterns = [
            self._key(pathmap.repo_pattern(p, flavour).rstrip("/") or "/") for p in patterns
        ]

    def _key(self, text: str) -> str:
        return text.casefold() if self.fold else text

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, path: bytes) -> bool:
        text = self._key(os.fsdecode(path))
        name = text.rsplit("/", 1)[-1]
        for p in self.patterns:
            if "/" in p:
                if fnmatch.fnmatchcase(text, p):
                    return True
            elif fnmatch.fnmatchcase(name, p):
                return True
        return False
