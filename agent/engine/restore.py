"""Restore: files of a snapshot back onto disk, verified as they are written.

Each file goes to ``target + repository path`` (``target="/"`` restores in
place; docs/format.md, "Paths"): on Windows ``D:\\restore\\C\\Users\\ana\\…``,
in place to the original drive or share. Names the destination cannot hold
(a ``:`` from Linux onto Windows) are escaped (``paths.escape_name``); names
that differ only in case, restored onto a case-insensitive volume, get a
``~N`` suffix (a ``renamed`` warning).

Content is fetched pack by pack in parallel (neighbouring blobs coalesced
into one ranged read), every blob is authenticated and its id
re-computed from the plaintext before it is written, all-zero chunks become
holes (sparse files stay sparse), and each file is written to a temporary
name in its directory and renamed over the destination only when complete:
an interrupted restore never leaves a half-written file under a real name,
and an existing file is replaced atomically or not at all.

Existing files at the destination (``overwrite``):

* ``never`` (default): kept, with a warning;
* ``if-newer``: replaced only when the snapshot's copy is newer (mtime) than
  the local file; identical files (same size and mtime) are left alone;
* ``always``: replaced.

Trees are data a compromised PC may have written. Every stored name becomes
a path component only through ``paths.safe_name``: entries named ``""``,
``.``, ``..`` or holding a separator or NUL, and a second entry of the same
name, are skipped as errors (``unsafe-name``) while the rest is restored.

On the way to a destination, a directory that is a symbolic link owned by
another user is never followed (an in-place restore running as root must not
write where a user's planted link points); links owned by root or by the
restoring user are followed, but under a target only when they resolve
inside it (a link restored earlier, or planted in the target, cannot carry
later writes out of it; Windows junctions are held to the same rule).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import errno
import fnmatch
import os
import secrets
import stat as statmod
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from agent.engine import paths as pathmap
from agent.engine.errors import CorruptObject, EngineError, RestoreCancelled, UnsafeName
from agent.engine.pack import pack_key
from agent.engine.repository import Repository
from agent.engine.snapshot import Snapshot
from agent.engine.store import StoreError
from agent.engine.tree import (
    BLOCKDEV,
    CHANGED_DURING_READ,
    CHARDEV,
    DIR,
    FIFO,
    FILE,
    SOCKET,
    SYMLINK,
    decode_name,
)

OVERWRITE_POLICIES = ("never", "if-newer", "always")
#: blobs of one pack closer than this are fetched in one ranged read
COALESCE_GAP = 256 * 1024
TEMP_PREFIX = b".cairn-restore-"
#: Windows: binary mode (no CRLF translation), handles not inherited
_OPEN_FLAGS = (
    os.O_WRONLY
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOINHERIT", 0)
)
#: Windows has no pwrite, and no chmod/utime on a descriptor
_PWRITE = getattr(os, "pwrite", None)
_META_BY_FD = os.chmod in os.supports_fd and os.utime in os.supports_fd


@dataclass
class RestoreIssue:
    path: str
    # exists | damaged | missing | unsupported | changed-during-read | unsafe-name | error
    kind: str
    message: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class RestoreStats:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    special: int = 0
    bytes_written: int = 0  # file sizes restored (holes included)
    files_skipped: int = 0
    files_failed: int = 0
    duration: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class RestoreProgress:
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    elapsed: float = 0.0


@dataclass
class RestoreResult:
    snapshot_id: str
    target: str
    stats: RestoreStats
    warnings: list[RestoreIssue] = field(default_factory=list)
    errors: list[RestoreIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {
            "snapshot_id": self.snapshot_id,
            "target": self.target,
            "stats": self.stats.to_dict(),
            "warnings": [w.to_dict() for w in self.warnings],
            "errors": [e.to_dict() for e in self.errors],
        }


_OS_SEP = os.fsencode(os.sep)
_JUNCTION = 0xA0000003  # IO_REPARSE_TAG_MOUNT_POINT (stat has it on Windows only)


def _comparable(real: bytes) -> bytes:
    """A resolved path as compared for containment (Windows: no ``\\\\?\\``
    prefix, case folded)."""
    return os.path.normcase(pathmap.strip_extended_bytes(real))


def _euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else 0


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


class _FileJob:
    __slots__ = ("path", "dest", "temp", "node", "remaining", "failed", "lock", "size", "created")

    def __init__(self, path: bytes, dest: bytes, temp: bytes, node: dict, chunks: int):
        self.path = path  # repository path
        self.dest = dest
        self.temp = temp
        self.node = node
        self.remaining = chunks
        self.failed: str | None = None
        self.lock = threading.Lock()
        self.size = node.get("size", 0)
        self.created = False  # the temporary file exists (made by the first writer)

    def open_for_write(self) -> int:
        """An fd on the temporary file; the first call creates it at full size
        (from whichever worker thread gets there first, so creating thousands
        of small files runs in parallel)."""
        with self.lock:
            if self.created:
                return os.open(self.temp, _OPEN_FLAGS)
            fd = os.open(self.temp, _OPEN_FLAGS | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.ftruncate(fd, self.size)
            except BaseException:
                os.close(fd)
                raise
            self.created = True
            return fd


def run_restore(
    repo: Repository,
    snapshot: Snapshot | str,
    target: str | bytes | None,
    *,
    include: Iterable[str] = (),
    overwrite: str | bool = "never",
    progress: Callable[[RestoreProgress], None] | None = None,
    cancel: threading.Event | None = None,
    workers: int = 4,
    restore_owner: bool | None = None,
) -> RestoreResult:
    """Restore ``snapshot`` (object, id, prefix or ``latest``) under ``target``
    (``None``, ``"/"`` or, on Windows, ``"\\"``: in place, to the original
    drive or share on Windows).

    ``overwrite``: "never" | "if-newer" | "always" (True = "always",
    False = "never"). ``restore_owner``: chown to the recorded owner;
    default only when running as root."""
    if isinstance(overwrite, bool):
        overwrite = "always" if overwrite else "never"
    if overwrite not in OVERWRITE_POLICIES:
        raise ValueError(f"overwrite must be one of {OVERWRITE_POLICIES}")
    if not isinstance(snapshot, Snapshot):
        snapshot = repo.find_snapshot(snapshot)
    if restore_owner is None:
        restore_owner = hasattr(os, "geteuid") and os.geteuid() == 0
    src, dst = pathmap.flavour_named(snapshot.path_flavour), pathmap.current()
    if target is None or os.fsdecode(target) in ("/", "\\"):  # in place
        if src.name != dst.name:
            raise EngineError(
                f"snapshot {snapshot.short_id} was taken on {src.name}: it cannot be restored "
                f"in place on {dst.name}; give a target directory"
            )
        target = b""
    else:
        target = pathmap.native_target(target, dst)
    r = _Restore(
        repo,
        snapshot,
        target,
        IncludeMatcher(include, src),
        overwrite,
        progress,
        cancel or threading.Event(),
        workers,
        restore_owner,
    )
    return r.run()


class _Restore:
    def __init__(
        self, repo, snapshot, target, matcher, overwrite, progress, cancel, workers, owner
    ):
        self.repo = repo
        self.snapshot = snapshot
        self.target = target  # b"" in place
        self.src = pathmap.flavour_named(snapshot.path_flavour)  # the snapshot's paths
        self.dst = pathmap.current()  # this machine's
        self.windows_in_place = not target and self.dst.windows
        self.fold_case = bool(target) and pathmap.target_folds_case()
        self._dests: dict[bytes, bytes] = {}  # repository path -> destination
        self.matcher = matcher
        self.overwrite = overwrite
        self.progress_cb = progress
        self.cancel = cancel
        self.workers = workers
        self.restore_owner = owner
        self.stats = RestoreStats()
        self.progress = RestoreProgress()
        self.warnings: list[RestoreIssue] = []
        self.errors: list[RestoreIssue] = []
        self._lock = threading.Lock()
        self._last_report = 0.0
        self._dirs_ready: set[bytes] = set()
        self._dirs_made: set[bytes] = set()  # repository paths of directories made
        self._real_target = b""  # the target with its symbolic links resolved
        self._restored: set[bytes] = set()  # destinations written by this restore

    def dest(self, path: bytes) -> bytes:
        return self._dests[path]

    def _child_dest(self, parent: bytes | None, path: bytes, name: bytes) -> bytes | None:
        """Where a node goes; None, in place on Windows, for a drive or share
        itself and the levels above a share (``/C``, ``/UNC/srv/share``)."""
        if self.windows_in_place:
            depth = path.count(b"/")
            native = pathmap.to_native(path, self.dst)
            if native is None or depth <= (3 if path.startswith(b"/UNC/") else 1):
                return None
            return pathmap.long_path(os.fsencode(native), self.dst)
        return pathmap.join_native(parent, name, self.dst)

    def _temp_beside(self, dest: bytes) -> bytes:
        name = TEMP_PREFIX + secrets.token_hex(6).encode()
        return pathmap.join_native(pathmap.dirname_native(dest, self.dst), name, self.dst)

    def issue(self, kind: str, path: bytes, message: str, error: bool = False):
        item = RestoreIssue(pathmap.native_display(path, self.src), kind, message)
        with self._lock:
            (self.errors if error else self.warnings).append(item)

    def run(self) -> RestoreResult:
        t0 = self.t0 = time.monotonic()
        if self.target:
            os.makedirs(self.target, exist_ok=True)  # the target itself is trusted
            self._real_target = _comparable(os.path.realpath(self.target))
        files, links, specials, dirs = self._select()
        self.progress.files_total = len(files)
        self.progress.bytes_total = sum(n.get("size", 0) for _, n in files)
        for path, node in dirs:
            self._make_dir(path, node)
        jobs = self._prepare_files(files)
        self._fetch(jobs)
        self._relink(files)
        for path, node in links:
            self._make_link(path, node)
        for path, node in specials:
            self._make_special(path, node)
        # Directory metadata last and deepest first: writing into a directory
        # changes its mtime, and a read-only mode would block the writes.
        for path, node in reversed(dirs):
            if path in self._dirs_made:  # never through a link refused on the way
                self._apply_meta(self.dest(path), node, is_link=False)
        self.stats.duration = round(time.monotonic() - t0, 3)
        self._report(force=True)
        return RestoreResult(
            self.snapshot.id,
            os.fsdecode(self.target or self.dst.sep),
            self.stats,
            self.warnings,
            self.errors,
        )

    # --- selecting -------------------------------------------------------------------
    def _select(self):
        files, links, specials, dirs = [], [], [], []
        stack: list[tuple[bytes, bytes, str, bool]] = [
            (b"", self.target, self.snapshot.tree, not self.matcher)
        ]
        while stack:
            base, base_dest, tree_id, selected = stack.pop()
            try:
                nodes = self.repo.load_tree(tree_id)
            except (CorruptObject, StoreError) as exc:
                self.issue("damaged", base or b"/", f"cannot read directory listing: {exc}", True)
                continue
            taken: dict[str, int] = {}  # case-folded destination names in this directory
            seen: set[bytes] = set()
            for node in nodes:
                raw = decode_name(node)
                path = base + b"/" + raw
                sel = selected or self.matcher.matches(path)
                kind = node.get("type")
                if kind != DIR and not sel:
                    continue
                try:
                    name = pathmap.safe_name(raw, self.src, self.dst)
                    if raw in seen:
                        # Restored in turn, `link -> /etc` and a directory
                        # `link/` would write through the link.
                        raise UnsafeName("a second entry with this name in its directory", name=raw)
                except UnsafeName as exc:
                    shown = base + b"/" + pathmap.printable_name(raw).encode()
                    self.issue("unsafe-name", shown, f"not restored: {exc}", True)
                    continue
                seen.add(raw)
                if self.fold_case:
                    name = self._unique_name(name, taken, path)
                dest = self._child_dest(base_dest, path, name)
                if dest is not None:
                    self._dests[path] = dest
                elif kind != DIR:
                    self.issue("unsupported", path, "no place for it on this system", True)
                    continue
                if kind == DIR:
                    if sel and dest is not None:
                        dirs.append((path, node))
                    if node.get("subtree"):
                        stack.append((path, dest, node["subtree"], sel))
                elif not sel:
                    continue
                elif kind == FILE:
                    files.append((path, node))
                elif kind == SYMLINK:
                    links.append((path, node))
                elif kind in (FIFO, SOCKET, CHARDEV, BLOCKDEV):
                    specials.append((path, node))
        dirs.sort(key=lambda item: item[0])
        return files, links, specials, dirs

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

    # --- directories and metadata ----------------------------------------------------
    def _make_dir(self, path: bytes, node: dict) -> None:
        dest = self.dest(path)
        try:
            self._safe_dir(dest)
            self.stats.dirs += 1
            self._dirs_made.add(path)
        except OSError as exc:
            self.issue("error", path, f"cannot create directory: {exc.strerror or exc}", True)

    def _ensure_parent(self, path: bytes) -> None:
        self._safe_dir(pathmap.dirname_native(self.dest(path), self.dst))

    def _safe_dir(self, directory: bytes) -> None:
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
                        errno.ELOOP,
                        "a directory on the way is another user's symbolic link",
                        current,
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
            self._dirs_ready.add(current)

    def _inside_target(self, path: bytes) -> bool:
        real = _comparable(os.path.realpath(path))
        root = self._real_target
        return real == root or real.startswith(root.rstrip(_OS_SEP) + _OS_SEP)

    def _apply_meta(self, dest: bytes | int, node: dict, *, is_link: bool, where=None) -> None:
        """Owner, mode and mtime on a path or an open descriptor."""
        by_fd = isinstance(dest, int)
        follow = by_fd or not is_link
        try:
            if self.restore_owner and "uid" in node:
                os.chown(dest, node["uid"], node.get("gid", -1), follow_symlinks=follow)
            if node.get("xattrs") and hasattr(os, "setxattr"):
                self._apply_xattrs(dest, node["xattrs"], follow, where)
            if not is_link and "mode" in node:
                os.chmod(dest, node["mode"])
            if "mtime_ns" in node:
                ns = node["mtime_ns"]
                if follow or os.utime in os.supports_follow_symlinks:
                    os.utime(dest, ns=(ns, ns), follow_symlinks=follow)
        except OSError as exc:
            shown = where if by_fd else dest
            self.issue("metadata", shown, f"cannot restore metadata: {exc.strerror or exc}")

    def _apply_xattrs(self, dest, xattrs: dict, follow: bool, where) -> None:
        for name, value in xattrs.items():
            try:
                os.setxattr(dest, name, base64.b64decode(value), follow_symlinks=follow)
            except OSError as exc:
                # Filesystems without xattrs, or namespaces only root may
                # set (security.*, trusted.*): not worth a warning per file.
                if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.EACCES):
                    shown = where if isinstance(dest, int) else dest
                    self.issue("metadata", shown, f"cannot restore {name}: {exc.strerror}")

    def _existing_allows(self, path: bytes, node: dict) -> bool:
        """Whether the destination may be (re)written; warns when not."""
        try:
            st = os.lstat(self.dest(path))
        except FileNotFoundError:
            return True
        if self.overwrite == "always" and not statmod.S_ISDIR(st.st_mode):
            return True
        if statmod.S_ISDIR(st.st_mode):
            self.issue("exists", path, "a directory exists at this path; not replaced")
            return False
        if self.overwrite == "if-newer":
            if st.st_size == node.get("size") and st.st_mtime_ns == node.get("mtime_ns"):
                return False  # identical by metadata: nothing to do, no warning
            if node.get("mtime_ns", 0) > st.st_mtime_ns:
                return True
            self.issue("exists", path, "the local file is newer; not overwritten")
            return False
        self.issue("exists", path, "exists; not overwritten (use overwrite)")
        return False

    # --- files -----------------------------------------------------------------------
    def _prepare_files(self, files) -> dict[bytes, list[tuple[_FileJob, int]]]:
        """Create each file's temporary copy; map blob id -> (job, offset)."""
        wanted: dict[bytes, list[tuple[_FileJob, int]]] = {}
        index = self.repo.index
        for path, node in files:
            if self.cancel.is_set():
                raise RestoreCancelled("restore cancelled")
            if not self._existing_allows(path, node):
                self.stats.files_skipped += 1
                self._file_done(node.get("size", 0))
                continue
            if CHANGED_DURING_READ in node.get("flags", ()):
                self.issue(
                    "changed-during-read",
                    path,
                    "this file kept changing while it was backed up; its content may be inconsistent",
                )
            content = [bytes.fromhex(c) for c in node.get("content", ())]
            missing = [c for c in content if c not in index]
            if missing:
                self.issue(
                    "missing",
                    path,
                    f"{len(missing)} of {len(content)} chunks are missing from the repository",
                    True,
                )
                self.stats.files_failed += 1
                continue
            dest = self.dest(path)
            try:
                self._ensure_parent(path)
            except OSError as exc:
                self.issue("error", path, f"cannot create directory: {exc.strerror or exc}", True)
                self.stats.files_failed += 1
                continue
            temp = self._temp_beside(dest)
            job = _FileJob(path, dest, temp, node, len(content))
            if not content:
                try:
                    os.close(job.open_for_write())
                except OSError as exc:
                    self.issue("error", path, f"cannot create file: {exc.strerror or exc}", True)
                    self.stats.files_failed += 1
                    continue
                self._finish_file(job)
                continue
            offset = 0
            for blob_id in content:
                wanted.setdefault(blob_id, []).append((job, offset))
                offset += index.raw_length(blob_id)
            if offset != job.size:
                # The recorded size disagrees with the chunks: trust the chunks.
                job.size = offset
        return wanted

    def _fetch(self, wanted: dict[bytes, list[tuple[_FileJob, int]]]) -> None:
        by_pack: dict[str, list] = {}
        for blob_id in wanted:
            e = self.repo.index.get(blob_id)
            by_pack.setdefault(e.pack_id, []).append((e.offset, e.length, blob_id, e))
        tasks = []
        max_range = self.repo.store.max_read_range
        for pack_id, blobs in by_pack.items():
            blobs.sort()
            group = [blobs[0]]
            for b in blobs[1:]:
                start = group[0][0]
                end = group[-1][0] + group[-1][1]
                if b[0] - end <= COALESCE_GAP and b[0] + b[1] - start <= max_range:
                    group.append(b)
                else:
                    tasks.append((pack_id, group))
                    group = [b]
            tasks.append((pack_id, group))
        with ThreadPoolExecutor(self.workers, thread_name_prefix="cairn-restore") as pool:
            for _ in pool.map(lambda t: self._fetch_range(wanted, *t), tasks):
                self._report()
                if self.cancel.is_set():
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise RestoreCancelled("restore cancelled")

    def _fetch_range(self, wanted, pack_id: str, group) -> None:
        if self.cancel.is_set():
            return
        start = group[0][0]
        end = group[-1][0] + group[-1][1]
        try:
            data = memoryview(self.repo.store.get_range(pack_key(pack_id), start, end - start))
        except (StoreError, OSError) as exc:
            for _off, _len, blob_id, _e in group:
                self._fail_blob(wanted[blob_id], f"cannot read pack {pack_id[:16]}: {exc}")
            return
        for off, length, blob_id, entry in group:
            try:
                plain = self.repo.open_blob(
                    blob_id, entry, data[off - start : off - start + length]
                )
            except CorruptObject as exc:
                self._fail_blob(wanted[blob_id], str(exc))
                continue
            zero = plain[:1] == b"\0" and plain[-1:] == b"\0" and plain.count(0) == len(plain)
            for job, file_offset in wanted[blob_id]:
                if job.failed:
                    self._chunk_done(job)
                else:
                    self._write_chunk(job, plain, file_offset, zero)

    def _write_chunk(self, job: _FileJob, plain: bytes, offset: int, zero: bool) -> None:
        try:
            fd = job.open_for_write()
        except OSError as exc:
            job.failed = f"cannot create file: {exc.strerror or exc}"
            self._chunk_done(job)
            return
        last = False
        try:
            if not zero:  # zeros stay holes: the file was created at full size
                view = memoryview(plain)
                while view:
                    if _PWRITE is not None:
                        n = _PWRITE(fd, view, offset)
                    else:  # the descriptor is this thread's own
                        os.lseek(fd, offset, os.SEEK_SET)
                        n = os.write(fd, view)
                    view = view[n:]
                    offset += n
        except OSError as exc:
            job.failed = f"write failed: {exc.strerror or exc}"
        finally:
            with job.lock:
                job.remaining -= 1
                last = job.remaining == 0
            if last and not job.failed and _META_BY_FD:
                # The last chunk: set metadata through the open descriptor
                # (no path lookups; most files are a single chunk).
                self._apply_meta(fd, job.node, is_link=False, where=job.dest)
            os.close(fd)
        if last:
            self._finish_file(job, meta_done=_META_BY_FD)

    def _relink(self, files) -> None:
        """Make restored copies of hard-linked files links again."""
        for path, node in files:
            if "link_to" not in node and "link_to_b64" not in node:
                continue
            first, dest = self._dests.get(decode_name(node, "link_to")), self.dest(path)
            if first not in self._restored or dest not in self._restored:
                continue  # not both restored this time: keep the copy
            tmp = self._temp_beside(dest)
            try:
                os.link(first, tmp)
                os.replace(tmp, dest)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)  # the copy stays: same content, only not linked

    def _fail_blob(self, dests, reason: str) -> None:
        for job, _offset in dests:
            if not job.failed:
                job.failed = reason
            self._chunk_done(job)

    def _chunk_done(self, job: _FileJob) -> None:
        with job.lock:
            job.remaining -= 1
            last = job.remaining == 0
        if last:
            self._finish_file(job)

    def _finish_file(self, job: _FileJob, meta_done: bool = False) -> None:
        path = job.path
        if job.failed:
            self.issue("damaged", path, f"not restored: {job.failed}", True)
            with self._lock:
                self.stats.files_failed += 1
            if job.created:
                try:
                    os.unlink(job.temp)
                except OSError:
                    pass
            return
        try:
            if not meta_done:
                self._apply_meta(job.temp, job.node, is_link=False)
            os.replace(job.temp, job.dest)
        except OSError as exc:
            self.issue("error", path, f"cannot finish file: {exc.strerror or exc}", True)
            with self._lock:
                self.stats.files_failed += 1
            try:
                os.unlink(job.temp)
            except OSError:
                pass
            return
        with self._lock:
            self.stats.files += 1
            self.stats.bytes_written += job.size
            self._restored.add(job.dest)
        self._file_done(job.size)

    def _file_done(self, size: int) -> None:
        with self._lock:
            self.progress.files_done += 1
            self.progress.bytes_done += size

    # --- links and special files -------------------------------------------------------
    def _make_link(self, path: bytes, node: dict) -> None:
        dest = self.dest(path)
        if not self._existing_allows(path, node):
            self.stats.files_skipped += 1
            return
        try:
            self._ensure_parent(path)
            target = decode_name(node, "target")
            if os.path.lexists(dest):
                tmp = self._temp_beside(dest)
                os.symlink(target, tmp)
                os.replace(tmp, dest)
            else:
                os.symlink(target, dest)
            self._apply_meta(dest, node, is_link=True)
            self.stats.symlinks += 1
        except OSError as exc:
            self.issue("error", path, f"cannot create symlink: {exc.strerror or exc}", True)

    def _make_special(self, path: bytes, node: dict) -> None:
        kind = node["type"]
        dest = self.dest(path)
        if os.path.lexists(dest):
            self.issue("exists", path, "exists; not replaced")
            return
        try:
            self._ensure_parent(path)
            if kind == FIFO and hasattr(os, "mkfifo"):
                os.mkfifo(dest, node.get("mode", 0o600))
            elif kind in (CHARDEV, BLOCKDEV) and hasattr(os, "mknod") and os.geteuid() == 0:
                flag = statmod.S_IFCHR if kind == CHARDEV else statmod.S_IFBLK
                os.mknod(dest, flag | node.get("mode", 0o600), node.get("rdev", 0))
            else:
                self.issue("unsupported", path, f"{kind} not restored")
                return
            self._apply_meta(dest, node, is_link=False)
            self.stats.special += 1
        except OSError as exc:
            self.issue("error", path, f"cannot create {kind}: {exc.strerror or exc}", True)

    def _report(self, force: bool = False) -> None:
        if self.progress_cb is None:
            return
        now = time.monotonic()
        if not force and now - self._last_report < 0.25:
            return
        self._last_report = now
        self.progress.elapsed = now - self.t0
        self.progress_cb(dataclasses.replace(self.progress))


__all__ = [
    "EngineError",
    "IncludeMatcher",
    "RestoreCancelled",
    "RestoreIssue",
    "RestoreProgress",
    "RestoreResult",
    "RestoreStats",
    "run_restore",
]
