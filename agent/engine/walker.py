"""Listing directories for backup, and exclude patterns.

Exclude patterns (``--exclude``), matched with shell wildcards (``*``, ``?``,
``[...]``) against byte paths:

* a pattern without ``/`` matches an entry's name anywhere in the tree
  (``*.tmp``, ``node_modules``);
* a pattern with ``/`` matches the entry's absolute original path
  (``/home/*/.cache``), and everything under it;
* ``**`` is accepted and means the same as ``*`` here (``*`` also crosses
  ``/`` in absolute patterns).

Paths are repository paths (docs/format.md, "Paths"). On Windows patterns
may be written natively (``C:\\Users\\*\\AppData``: backslashes become ``/``,
the drive ``/C``) and match case-insensitively.

An excluded directory is not descended into.

Also here, what the backup's walk needs besides listing: the source paths as
repository paths and the plan of directories above them, a new tree node
from an entry's stat (owner names, extended attributes), and the background
count of files and bytes for the progress estimate (restic's scanner).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat as statmod
from collections.abc import Callable, Iterable

from agent.engine import paths as pathmap
from agent.engine.errors import EngineError
from agent.engine.tree import Node, NodeType, join_path

try:  # POSIX owner names; absent on Windows
    import grp
    import pwd
except ImportError:  # pragma: no cover
    grp = pwd = None

_JUNCTION = 0xA0000003  # IO_REPARSE_TAG_MOUNT_POINT (stat has it on Windows only)
XATTRS = hasattr(os, "listxattr")
#: marks a source path in the plan (the directories above the sources)
SOURCE = object()


class ExcludeMatcher:
    def __init__(
        self, patterns: Iterable[str | bytes] = (), flavour: pathmap.Flavour | None = None
    ):
        self.patterns = [p if isinstance(p, str) else os.fsdecode(p) for p in patterns]
        flavour = flavour or pathmap.current()
        names, paths = [], []
        for p in self.patterns:
            raw = os.fsencode(pathmap.repo_pattern(p, flavour).replace("**", "*"))
            target = paths if b"/" in raw.rstrip(b"/") else names
            target.append(fnmatch.translate(os.fsdecode(raw.rstrip(b"/") or raw)))
        flags = re.IGNORECASE if flavour.case_insensitive else 0
        self._name = re.compile("|".join(names), flags) if names else None
        self._path = re.compile("|".join(paths), flags) if paths else None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: bytes, name: bytes) -> bool:
        if self._name is not None and self._name.match(os.fsdecode(name)):
            return True
        return self._path is not None and self._path.match(os.fsdecode(path)) is not None


def list_dir(path: bytes) -> list[tuple[bytes, os.DirEntry]]:
    """(name, entry) of a directory, sorted by name bytes. Raises OSError."""
    with os.scandir(path) as it:
        entries = [(e.name, e) for e in it]
    entries.sort(key=lambda item: item[0])
    return entries


def junction(entry: os.DirEntry) -> bool:
    # Windows fills DirEntry.stat from the directory listing: no extra call.
    return getattr(entry.stat(follow_symlinks=False), "st_reparse_tag", 0) == _JUNCTION


def is_junction(st: os.stat_result) -> bool:
    return getattr(st, "st_reparse_tag", 0) == _JUNCTION


# --- sources and the plan above them ------------------------------------------------------
def normalise_sources(paths, flavour: pathmap.Flavour) -> list[bytes]:
    """Source paths as repository paths (docs/format.md, "Paths")."""
    out, seen = [], set()
    for p in paths:
        try:
            p = pathmap.to_repo(p, flavour)
        except ValueError as exc:
            raise EngineError(f"cannot back up {os.fsdecode(p)}: {exc}") from None
        key = pathmap.case_key(p) if flavour.case_insensitive else p
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def plan_sources(sources: Iterable[bytes]) -> dict:
    """The directories above the sources as nested {name: plan}, each
    source's own name mapped to SOURCE (nothing of it planned: it is listed)."""
    plan: dict = {}
    for src in sorted(sources, key=len):
        parts = [p for p in src.split(b"/") if p]
        level = plan
        for i, part in enumerate(parts):
            cur = level.get(part)
            if cur is SOURCE:
                break  # an ancestor is already a source
            if i == len(parts) - 1:
                level[part] = SOURCE
            else:
                level = level.setdefault(part, {})
    return plan


def match_case(plan: dict, real: bytes) -> dict:
    """Case-insensitive volumes: the plan's names (from the source paths as
    given) spelled as on disk, so ``C:\\users\\ANA`` and ``C:\\Users\\ana``
    are one tree path and the parent snapshot's nodes are found."""
    try:
        on_disk = {pathmap.case_key(n): n for n in os.listdir(real)}
    except OSError:
        return plan
    out: dict = {}
    for name, sub in plan.items():
        name = on_disk.get(pathmap.case_key(name), name)
        out[name] = _merge_plans(out[name], sub) if name in out else sub
    return out


def _merge_plans(a, b):
    if a is SOURCE or b is SOURCE:
        return SOURCE
    out = dict(a)
    for name, sub in b.items():
        out[name] = _merge_plans(out[name], sub) if name in out else sub
    return out


# --- nodes from the file system ---------------------------------------------------------
class OwnerNames:
    """uid/gid -> name, looked up once per number ("" when unknown)."""

    def __init__(self):
        self._names: dict[tuple[str, int], str] = {}

    def get(self, kind: str, num: int) -> str:
        key = (kind, num)
        name = self._names.get(key)
        if name is None:
            try:
                if pwd is None:
                    name = ""
                elif kind == "user":
                    name = pwd.getpwuid(num).pw_name
                else:
                    name = grp.getgrgid(num).gr_name
            except (KeyError, OverflowError):
                name = ""
            self._names[key] = name
        return name

    def node(self, name: bytes, kind: NodeType, st: os.stat_result) -> Node:
        """A tree node with the metadata every entry records."""
        return Node(
            name,
            kind,
            mode=statmod.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            user=self.get("user", st.st_uid) or None,
            group=self.get("group", st.st_gid) or None,
            mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns,
            ino=st.st_ino,
        )


def read_xattrs(real: bytes) -> dict[str, bytes] | None:
    """Extended attributes (Linux: user.*, security.* labels, ACLs as
    system.posix_acl_*), None when there are none or the filesystem has
    none. Raises OSError for any other failure (the caller warns)."""
    try:
        names = os.listxattr(real, follow_symlinks=False)
        if not names:
            return None
        return {n: os.getxattr(real, n, follow_symlinks=False) for n in sorted(names)}
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.ENODATA, errno.ENOENT):
            return None
        raise


def node_type(mode: int) -> NodeType | None:
    """The tree node type of an ``st_mode``; None for kinds not recorded
    (Solaris doors, ...)."""
    return _NODE_TYPES.get(statmod.S_IFMT(mode))


_NODE_TYPES = {
    statmod.S_IFDIR: NodeType.DIR,
    statmod.S_IFREG: NodeType.FILE,
    statmod.S_IFLNK: NodeType.SYMLINK,
    statmod.S_IFIFO: NodeType.FIFO,
    statmod.S_IFSOCK: NodeType.SOCKET,
    statmod.S_IFCHR: NodeType.CHARDEV,
    statmod.S_IFBLK: NodeType.BLOCKDEV,
}


# --- the scanner ---------------------------------------------------------------------
def scan_totals(
    sources: Iterable[tuple[bytes, bytes | None]],
    matcher: ExcludeMatcher,
    flavour: pathmap.Flavour,
    update: Callable[[int, int], None],
    stop: Callable[[], bool],
) -> tuple[int, int]:
    """Count the files and bytes under ``sources`` ((path, real path) pairs)
    ahead of the backup, for its ETA: ``update(files, bytes)`` after each
    directory, until ``stop()``. Best effort: what cannot be read is skipped."""
    files = size = 0
    stack = []
    for src, real in sources:
        try:
            st = os.lstat(real)
        except (OSError, TypeError):
            continue
        if statmod.S_ISDIR(st.st_mode):
            stack.append((src, real))
        elif statmod.S_ISREG(st.st_mode):
            files += 1
            size += st.st_size
    while stack and not stop():
        path, real = stack.pop()
        try:
            with os.scandir(real) as it:
                for e in it:
                    p = join_path(path, e.name)
                    if matcher and matcher.excluded(p, e.name):
                        continue
                    try:
                        if e.is_dir(follow_symlinks=False):
                            if flavour.windows and junction(e):
                                continue
                            stack.append((p, pathmap.join_native(real, e.name, flavour)))
                        elif e.is_file(follow_symlinks=False):
                            files += 1
                            size += e.stat(follow_symlinks=False).st_size
                    except OSError:
                        pass
        except OSError:
            pass
        update(files, size)
    return files, size
