"""Backup: walk the sources, store new content, write trees, index and snapshot.

Pipeline (two cores, bounded memory):

* The calling thread walks directories, decides per file whether it must be
  read (incremental: size, mtime, ctime and inode against the parent
  snapshot), reads large files in big blocks and cuts them into chunks
  (FastCDC releases the GIL while cutting). Small files (one chunk, most of
  a PC's files) are opened, read and stored whole by the workers, so their
  I/O waits overlap each other and the walk.
* Each chunk goes to a pool of worker threads (one per core): keyed BLAKE3,
  dedup against the index, zstd, AES-GCM straight into a pack buffer. Work is
  split by chunk, not by file, so one huge file keeps both cores busy. A
  semaphore bounds the chunks in flight.
* Full packs go to upload threads; the pack buffer pool is bounded, so slow
  storage holds back reading (backpressure). Memory stays bounded whatever the
  file sizes: chunks in flight + pack buffers (~100 MiB at the defaults).
* Directory trees are written when all their files' chunks are done, in
  post-order, without draining the pipeline at each directory.
* Index objects are written after the packs they name are stored; the
  snapshot is written last. A crash at any point leaves the repository valid.

Files that change while read are re-read up to ``read_retries`` times; if
they keep changing they are stored flagged ``changed-during-read`` with a
warning in the snapshot and the result, never presented as a good copy.
An attempt that may be replaced by a later one (a file changed in the last
seconds, or a re-read) is held aside (``_HeldAttempt``) and stored only if it
is the copy the snapshot keeps: a busy file costs one upload, not one per
attempt. Files read from a read-only filesystem snapshot (``frozen``) cannot
change: one read, no re-read.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import errno
import getpass
import os
import random
import stat as statmod
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from agent.engine import compress
from agent.engine import paths as pathmap
from agent.engine.chunker import Chunker
from agent.engine.crypto import OVERHEAD
from agent.engine.errors import BackupCancelled, EngineError, SnapshotNotFound
from agent.engine.index import INDEX_EVERY_PACKS
from agent.engine.pack import DATA, TREE, TREE_PACK_SIZE, FinishedPack, PackWriter, pack_key
from agent.engine.repository import Repository, default_hostname
from agent.engine.snapshot import Snapshot, utcnow_iso
from agent.engine.source import NotARegularFile, open_source_file
from agent.engine.store import ObjectExists, StoreError
from agent.engine.tree import (
    BLOCKDEV,
    CHANGED_DURING_READ,
    CHARDEV,
    DIR,
    FIFO,
    FILE,
    SOCKET,
    SYMLINK,
    UNREADABLE,
    decode_name,
    encode_name,
    encode_tree,
    join_path,
)
from agent.engine.walker import ExcludeMatcher, list_dir

try:  # POSIX owner names; absent on Windows
    import grp
    import pwd
except ImportError:  # pragma: no cover
    grp = pwd = None

#: re-reads of a file that changed while it was read, before storing it flagged
READ_RETRIES = 3
#: a file modified this close to (or after) the parent's start may have been
#: read mid-write by the parent with unchanged timestamps on a coarse-clock
#: filesystem: read it again rather than trust the parent's copy
RACY_MARGIN_NS = 2_000_000_000
#: a file changed this recently when a read begins is probably being written:
#: that attempt is held aside until it is accepted (see _HeldAttempt)
BUSY_NS = 10_000_000_000
#: a held attempt's compressed chunks stay in memory up to this, then spill to
#: an unlinked temporary file (deleted by the OS even if the agent dies)
HOLD_IN_MEMORY = 16 * 1024 * 1024
#: beyond this (or when the temporary file's disk is full) the rest of the
#: attempt is stored as it is read, as before: a huge busy file may then cost
#: part of a copy more, but never fails the backup for want of local room
HOLD_LIMIT = 4 * 1024 * 1024 * 1024
#: directories whose files are still in the pipeline before the walk waits
MAX_PENDING_DIRS = 4096
PROGRESS_INTERVAL = 0.25


@dataclass
class BackupWarning:
    path: str
    kind: str  # vanished | permission-denied | read-error | changed-during-read | unreadable-dir
    message: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class BackupStats:
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_read: int = 0  # files whose content was read (new + changed, not retries)
    dirs_new: int = 0
    dirs_changed: int = 0
    dirs_unchanged: int = 0
    other_entries: int = 0  # symlinks, FIFOs, sockets, devices
    total_files: int = 0
    total_bytes: int = 0  # size of all files in the snapshot
    bytes_read: int = 0  # bytes read from disk (with retries)
    bytes_added: int = 0  # bytes of new blobs stored (compressed + encrypted)
    bytes_added_raw: int = 0  # plaintext bytes of new blobs
    data_blobs_added: int = 0
    tree_blobs_added: int = 0
    packs_written: int = 0
    retries: int = 0
    #: compressed bytes of rejected read attempts that were held and dropped,
    #: never uploaded (what a busy file would otherwise cost per retry)
    bytes_discarded: int = 0
    duration: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class BackupProgress:
    """Handed to the progress callback (a copy, at most every 0.25 s)."""

    files_done: int = 0
    bytes_done: int = 0  # bytes of files done (read or unchanged)
    files_total: int | None = None  # from the background scan; None until known
    bytes_total: int | None = None
    scan_done: bool = False
    bytes_read: int = 0
    bytes_added: int = 0
    current: str = ""
    elapsed: float = 0.0


@dataclass
class BackupResult:
    snapshot_id: str
    snapshot: Snapshot
    stats: BackupStats
    warnings: list[BackupWarning] = field(default_factory=list)
    parent: str | None = None

    def to_dict(self) -> dict:
        return {
            "snapshot_id": self.snapshot_id,
            "parent": self.parent,
            "stats": self.stats.to_dict(),
            "warnings": [w.to_dict() for w in self.warnings],
        }


def run_backup(
    repo: Repository,
    paths: Iterable[str | bytes],
    *,
    excludes: Iterable[str] = (),
    tags: Iterable[str] = (),
    parent: str | None = "auto",
    progress: Callable[[BackupProgress], None] | None = None,
    translate: Callable[[str], str] | None = None,
    cancel: threading.Event | None = None,
    hostname: str | None = None,
    workers: int | None = None,
    read_retries: int = READ_RETRIES,
    estimate: bool = True,
    frozen: Callable[[str], bool] | None = None,
) -> BackupResult:
    """Back up ``paths`` (absolute; relative ones are made absolute) into ``repo``.

    * ``parent``: ``"auto"`` (latest snapshot of this host, preferring the
      same paths), a snapshot id/prefix, or None for a full read.
    * ``translate``: maps an original absolute path to the path to read it
      from (a filesystem snapshot view). It is called for each source path
      and each directory; the snapshot records original paths.
    * ``cancel``: when set, the backup stops soon, indexes what it uploaded
      and raises BackupCancelled.
    * ``progress``: called from the backup thread with a BackupProgress copy,
      at most every 0.25 s; keep it cheap.
    * ``frozen``: whether an original source path is read from a read-only
      snapshot (``PointInTime.covers``); its files are read once, since
      nothing can change them (no "recently changed" re-read).
    """
    return _Backup(
        repo,
        paths,
        excludes=list(excludes),
        tags=list(tags),
        parent=parent,
        progress=progress,
        translate=translate,
        cancel=cancel or threading.Event(),
        hostname=hostname or default_hostname(),
        workers=workers or max(1, min(os.cpu_count() or 1, 8)),
        read_retries=read_retries,
        estimate=estimate,
        frozen=frozen,
    ).run()


class _DirJob:
    """A directory being backed up: its nodes, and files still in flight."""

    __slots__ = (
        "path",
        "real",
        "node",
        "nodes",
        "pending",
        "entries",
        "i",
        "plan",
        "prev",
        "prev_tree",
        "_done",
    )

    def __init__(self, path, real, node, entries, plan=None, prev=None, prev_tree=None):
        self.path: bytes = path  # original path ("" for the root)
        self.real: bytes = real  # path to read from
        self.node: dict | None = node  # this directory's node in its parent
        self.nodes: list[dict] = []
        #: (node, futures, small-file context or None), resolved at finalize
        self.pending: list[tuple[dict, list[Future], tuple | None]] = []
        self.entries = entries  # [(name, DirEntry | None)]
        self.i = 0
        self.plan = plan  # for directories above the sources: names to visit
        self.prev: dict[bytes, dict] | None = prev  # parent snapshot's nodes by name
        self.prev_tree: str | None = prev_tree  # parent snapshot's tree id for this dir
        self._done = 0  # futures known to be done (cursor into flattened pending)

    def all_done(self) -> bool:
        for item in self.pending[self._done :]:
            if not all(f.done() for f in item[1]):
                return False
            self._done += 1
        return True

    def first_not_done(self) -> Future | None:
        for item in self.pending[self._done :]:
            for f in item[1]:
                if not f.done():
                    return f
        return None


_SOURCE = object()  # marks a source path in the plan


class _Backup:
    def __init__(self, repo: Repository, paths, **opts):
        self.repo = repo
        self.flavour = pathmap.current()
        self.sources = _normalise_sources(paths, self.flavour)  # repository paths
        if not self.sources:
            raise EngineError("nothing to back up: no paths given")
        self.native_sources = [pathmap.to_native(p, self.flavour) for p in self.sources]
        self.excludes = opts["excludes"]
        self.matcher = ExcludeMatcher(self.excludes, self.flavour)
        self.tags = opts["tags"]
        self.parent_ref = opts["parent"]
        self.progress_cb = opts["progress"]
        self.translate = opts["translate"]
        self.cancel: threading.Event = opts["cancel"]
        self.hostname = opts["hostname"]
        self.workers = opts["workers"]
        self.read_retries = opts["read_retries"]
        self.estimate = opts["estimate"]
        frozen = opts["frozen"]
        #: sources read from a read-only snapshot, decided once per source
        self.frozen_sources = [
            src
            for src, native in zip(self.sources, self.native_sources, strict=True)
            if frozen is not None and frozen(native)
        ]

        self.stats = BackupStats()
        self.progress = BackupProgress()
        self.warnings: list[BackupWarning] = []
        self.chunker = Chunker(repo.chunker_params)
        self.min_chunk = repo.chunker_params.min_size
        self.level = repo.compression_level

        self._lock = threading.Lock()  # claimed set, stats touched by workers
        self._claimed: set[bytes] = set()
        self._index_lock = threading.Lock()
        self._unindexed: dict[str, list] = {}  # uploaded packs not yet in an index object
        self._upload_errors: list[BaseException] = []
        self._uploads: set[Future] = set()
        self._ready: collections.deque[_DirJob] = collections.deque()
        self._root_tree: bytes | None = None
        self._last_progress = 0.0
        self._owner_names: dict[tuple[str, int], str] = {}
        self._parent_start_ns = 0
        self._zero_chunks: dict[int, Future] = {}
        self._hardlinks: dict[tuple[int, int], bytes] = {}
        self.cancel_scan = False  # stops the totals scanner when the backup ends

    # --- driver -------------------------------------------------------------------
    def run(self) -> BackupResult:
        self.t0 = time.monotonic()
        started = utcnow_iso()
        parent = self._resolve_parent()
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cairn-chunk")
        self.upload_pool = ThreadPoolExecutor(2, thread_name_prefix="cairn-upload")
        self.inflight = threading.Semaphore(self.workers * 2 + 2)
        max_blob = self.repo.chunker_params.max_size
        self.data_packer = PackWriter(
            self.repo.cipher, self.repo.pack_size, max_blob, self._on_pack_full, buffers=3
        )
        self.tree_packer = PackWriter(
            self.repo.cipher, TREE_PACK_SIZE, max_blob, self._on_pack_full, buffers=2
        )
        scanner = None
        if self.progress_cb is not None and self.estimate:
            scanner = threading.Thread(target=self._scan_totals, daemon=True, name="cairn-scan")
            scanner.start()
        try:
            try:
                self._walk(parent)
                self._finalize_ready(block=True)
            except BaseException:
                self._drain(abort=True)
                raise
            self._drain(abort=False)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.upload_pool.shutdown(wait=True)
            self.cancel_scan = True
        assert self._root_tree is not None
        self.stats.duration = round(time.monotonic() - self.t0, 3)
        snapshot = Snapshot(
            tree=self._root_tree.hex(),
            paths=self.native_sources,
            path_flavour=self.flavour.name,
            hostname=self.hostname,
            time=started,
            end_time=utcnow_iso(),
            username=_username(),
            tags=self.tags,
            excludes=self.excludes,
            parent=parent.id if parent else None,
            stats=self.stats.to_dict(),
            warnings=[w.to_dict() for w in self.warnings[: Snapshot.MAX_WARNINGS]],
            warnings_total=len(self.warnings),
            program=f"cairn-agent {_version()}",
        )
        snapshot_id = self.repo.save_snapshot(snapshot)
        self._report(force=True)
        return BackupResult(
            snapshot_id, snapshot, self.stats, self.warnings, parent.id if parent else None
        )

    def _drain(self, abort: bool) -> None:
        """Finish in-flight work, flush packs, wait for uploads, write the index.
        On abort (error or cancel) whatever was uploaded is still indexed, so
        the next backup reuses it."""
        if abort:
            self.pool.shutdown(wait=True, cancel_futures=True)
        else:
            self.pool.shutdown(wait=True)
        try:
            self.data_packer.flush()
            self.tree_packer.flush()
        except Exception:
            if not abort:
                raise
        for f in list(self._uploads):
            f.exception()  # waits
        if self._upload_errors and not abort:
            raise self._upload_errors[0]
        self._write_index(final=True)

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise BackupCancelled("backup cancelled")
        if self._upload_errors:
            raise self._upload_errors[0]

    def _resolve_parent(self) -> Snapshot | None:
        if self.parent_ref is None:
            return None
        if self.parent_ref == "auto":
            snaps = [s for s in self.repo.snapshots() if s.hostname == self.hostname]
            key = str.casefold if self.flavour.case_insensitive else str
            wanted = sorted(map(key, self.native_sources))
            same = [s for s in snaps if sorted(map(key, s.paths)) == wanted]
            parent = (same or snaps or [None])[-1]
        else:
            try:
                parent = self.repo.find_snapshot(self.parent_ref)
            except SnapshotNotFound:
                raise
        if parent is not None:
            self._parent_start_ns = int(parent.start.timestamp() * 1e9)
            self._parent_root = self._tree_by_name(parent.tree)
        return parent

    def _tree_by_name(self, tree_id: str | None) -> dict[bytes, dict] | None:
        if not tree_id:
            return None
        try:
            return {decode_name(n): n for n in self.repo.load_tree(tree_id)}
        except (EngineError, StoreError):
            # A parent tree that is damaged or cannot be fetched (an offline
            # agent whose cache lacks it) only costs reading that directory's
            # files again: deduplication still works through the index.
            return None

    # --- walking ---------------------------------------------------------------------
    def _plan(self) -> dict:
        plan: dict = {}
        for src in sorted(self.sources, key=len):
            parts = [p for p in src.split(b"/") if p]
            level = plan
            for i, part in enumerate(parts):
                cur = level.get(part)
                if cur is _SOURCE:
                    break  # an ancestor is already a source
                if i == len(parts) - 1:
                    level[part] = _SOURCE
                else:
                    level = level.setdefault(part, {})
        return plan

    def _real(self, path: bytes) -> bytes | None:
        """The native path to read a repository path from; None for levels
        of the repository namespace that are no directory (``/UNC``)."""
        native = pathmap.to_native(path, self.flavour)
        if native is None:
            return None
        if self.translate is not None:
            native = self.translate(native)
        return pathmap.long_path(os.fsencode(native), self.flavour)

    def _walk(self, parent: Snapshot | None) -> None:
        prev_root = getattr(self, "_parent_root", None) if parent else None
        if b"/" in self.sources:  # the whole filesystem: the root is listed, not planned
            root = _DirJob(b"", self._real(b""), None, list_dir(self._real(b"")), None, prev_root)
        else:
            plan = self._plan()
            entries = [(n, None) for n in sorted(plan)]
            root = _DirJob(b"", self._real(b"") or b"", None, entries, plan, prev_root)
        stack = [root]
        while stack:
            job = stack[-1]
            if job.i < len(job.entries):
                self._check_cancel()
                name, entry = job.entries[job.i]
                job.i += 1
                child = self._entry(job, name, entry)
                if child is not None:
                    stack.append(child)
                self._finalize_ready(block=False)
                self._report()
            else:
                stack.pop()
                job.entries = None
                self._ready.append(job)
                self._finalize_ready(block=len(self._ready) > MAX_PENDING_DIRS)

    def _warn(self, path: bytes, kind: str, message: str) -> None:
        self.warnings.append(
            BackupWarning(pathmap.native_display(path, self.flavour), kind, message)
        )

    def _entry(self, job: _DirJob, name: bytes, entry) -> _DirJob | None:
        path = join_path(job.path, name)
        sub_plan = job.plan.get(name) if job.plan is not None else None
        in_plan = job.plan is not None
        if not in_plan and self.matcher and self.matcher.excluded(path, name):
            return None
        real = self._real(path) if in_plan else pathmap.join_native(job.real, name, self.flavour)
        if real is None:  # /UNC, /UNC/<server>: a directory node without metadata
            node = {"type": DIR}
            encode_name(name, node)
            job.nodes.append(node)
            prev = job.prev.get(name) if job.prev else None
            prev_tree = prev.get("subtree") if prev is not None else None
            entries = [(n, None) for n in sorted(sub_plan)]
            return _DirJob(
                path, b"", node, entries, sub_plan, self._tree_by_name(prev_tree), prev_tree
            )
        try:
            st = os.lstat(real)
        except FileNotFoundError:
            if in_plan and sub_plan is _SOURCE:
                self._warn(path, "vanished", "source path does not exist")
            elif not in_plan:
                self._warn(path, "vanished", "vanished before it could be read")
            return None
        except OSError as exc:
            self._warn(path, _kind(exc), f"cannot stat: {exc.strerror or exc}")
            return None
        if isinstance(sub_plan, dict) and not statmod.S_ISDIR(st.st_mode):
            return None  # a path above a source is not a directory: nothing below it
        node = self._meta(name, st)
        if _XATTRS:
            self._read_xattrs(real, node, path)
        prev = job.prev.get(name) if job.prev else None
        mode = st.st_mode
        if getattr(st, "st_reparse_tag", 0) == _JUNCTION and not isinstance(sub_plan, dict):
            # A Windows junction (mount point) is recorded like a symlink and
            # never followed: user profiles hold legacy ones that loop.
            mode = statmod.S_IFLNK | statmod.S_IMODE(mode)
        if statmod.S_ISDIR(mode):
            node["type"] = DIR
            job.nodes.append(node)
            prev_nodes = prev_tree = None
            if prev is not None and prev.get("type") == DIR:
                prev_tree = prev.get("subtree")
                prev_nodes = self._tree_by_name(prev_tree)
            if isinstance(sub_plan, dict):
                if self.flavour.case_insensitive:
                    sub_plan = _match_case(sub_plan, real)
                entries = [(n, None) for n in sorted(sub_plan)]
                return _DirJob(path, real, node, entries, sub_plan, prev_nodes, prev_tree)
            try:
                entries = list_dir(real)
            except FileNotFoundError:
                job.nodes.pop()
                self._warn(path, "vanished", "directory vanished before it could be listed")
                return None
            except OSError as exc:
                node["flags"] = [UNREADABLE]
                self._warn(path, "unreadable-dir", f"cannot list directory: {exc.strerror or exc}")
                entries = []
            return _DirJob(path, real, node, entries, None, prev_nodes, prev_tree)
        if statmod.S_ISREG(mode):
            self._file(job, node, st, path, real, prev)
            return None
        self.stats.other_entries += 1
        if statmod.S_ISLNK(mode):
            node["type"] = SYMLINK
            try:
                encode_name(os.readlink(real), node, "target")
            except FileNotFoundError:
                self._warn(path, "vanished", "symlink vanished before it could be read")
                return None
            except OSError as exc:
                self._warn(path, _kind(exc), f"cannot read symlink: {exc.strerror or exc}")
                return None
        elif statmod.S_ISFIFO(mode):
            node["type"] = FIFO  # recorded, never opened
        elif statmod.S_ISSOCK(mode):
            node["type"] = SOCKET
        elif statmod.S_ISCHR(mode) or statmod.S_ISBLK(mode):
            node["type"] = CHARDEV if statmod.S_ISCHR(mode) else BLOCKDEV
            node["rdev"] = st.st_rdev
        else:
            return None
        job.nodes.append(node)
        return None

    def _meta(self, name: bytes, st: os.stat_result) -> dict:
        node: dict = {}
        encode_name(name, node)
        node.update(
            mode=statmod.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns,
            ino=st.st_ino,
        )
        user = self._owner("user", st.st_uid)
        group = self._owner("group", st.st_gid)
        if user:
            node["user"] = user
        if group:
            node["group"] = group
        return node

    def _read_xattrs(self, real: bytes, node: dict, path: bytes) -> None:
        """Extended attributes (Linux: user.*, security.* labels, ACLs as
        system.posix_acl_*), base64 in the node. Best effort: a filesystem
        without them is normal, an unreadable one a warning."""
        try:
            names = os.listxattr(real, follow_symlinks=False)
            if not names:
                return
            node["xattrs"] = {
                n: base64.b64encode(os.getxattr(real, n, follow_symlinks=False)).decode("ascii")
                for n in sorted(names)
            }
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.ENODATA, errno.ENOENT):
                self._warn(path, "read-error", f"cannot read extended attributes: {exc.strerror}")

    def _owner(self, kind: str, num: int) -> str:
        key = (kind, num)
        name = self._owner_names.get(key)
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
            self._owner_names[key] = name
        return name

    # --- files ------------------------------------------------------------------------
    def _unchanged(self, prev: dict | None, st: os.stat_result) -> bool:
        if prev is None or prev.get("type") != FILE or prev.get("flags"):
            return False
        if (
            prev.get("size") != st.st_size
            or prev.get("mtime_ns") != st.st_mtime_ns
            or prev.get("ctime_ns") != st.st_ctime_ns
            or prev.get("ino") != st.st_ino
        ):
            return False
        if st.st_mtime_ns >= self._parent_start_ns - RACY_MARGIN_NS:
            return False
        index = self.repo.index
        return all(index.reusable(bytes.fromhex(c)) for c in prev.get("content", ()))

    def _file(self, job, node, st, path, real, prev) -> None:
        node["type"] = FILE
        self.progress.current = pathmap.native_display(path, self.flavour)
        if st.st_nlink > 1:
            # Hard links: later names point at the first one seen (the walk is
            # sorted, so this is stable); content is stored once by dedup anyway.
            first = self._hardlinks.setdefault((st.st_dev, st.st_ino), path)
            if first != path:
                encode_name(first, node, "link_to")
        if self._unchanged(prev, st):
            node["size"] = st.st_size
            node["content"] = prev["content"]
            job.nodes.append(node)
            self.stats.files_unchanged += 1
            self._file_done(st.st_size)
            return
        if st.st_size < self.min_chunk:
            # Small files (most of a PC's files) are opened, read and stored
            # whole by the workers, so their I/O waits overlap; the walk goes on.
            fut = self._submit_call(self._read_small, path, real, self._frozen(path))
            job.nodes.append(node)
            had_file = prev is not None and prev.get("type") == FILE
            job.pending.append((node, [fut], (path, real, had_file)))
            self.progress.files_done += 1
            self.progress.bytes_done += st.st_size
            return
        read = self._read_file(path, real, self._frozen(path))
        if read is None:
            return
        futures, st_read, changed = read
        node.update(
            size=st_read.st_size,
            mtime_ns=st_read.st_mtime_ns,
            ctime_ns=st_read.st_ctime_ns,
            ino=st_read.st_ino,
            mode=statmod.S_IMODE(st_read.st_mode),
        )
        if changed:
            node["flags"] = [CHANGED_DURING_READ]
        job.nodes.append(node)
        job.pending.append((node, futures, None))
        self.stats.files_read += 1
        if prev is not None and prev.get("type") == FILE:
            self.stats.files_changed += 1
        else:
            self.stats.files_new += 1
        self._file_done(st_read.st_size)

    def _file_done(self, size: int) -> None:
        self.stats.total_files += 1
        self.stats.total_bytes += size
        self.progress.files_done += 1
        self.progress.bytes_done += size

    def _open_source(self, path: bytes, real: bytes):
        """The open source file, or None with a warning saying why not."""
        try:
            return open_source_file(real)
        except FileNotFoundError:
            self._warn(path, "vanished", "vanished before it could be read")
        except NotARegularFile:
            self._warn(path, "vanished", "replaced by a non-regular file during the backup")
        except OSError as exc:
            self._warn(path, _kind(exc), f"cannot open: {exc.strerror or exc}")
        return None

    def _frozen(self, path: bytes) -> bool:
        """Whether a repository path is read from a read-only snapshot."""
        return any(
            src == b"/" or path == src or path.startswith(src + b"/") for src in self.frozen_sources
        )

    def _read_file(self, path: bytes, real: bytes, frozen: bool = False):
        """(chunk futures, stat, changed) or None if the file could not be read.

        An attempt that a later one may replace is held (not uploaded) when
        the file looks busy or is being re-read; the last attempt is stored
        directly, since it is kept either way (flagged if it changed too)."""
        attempts = 1 if frozen else 1 + max(0, self.read_retries)
        for attempt in range(attempts):
            f = self._open_source(path, real)
            if f is None:
                return None
            held = None
            futures: list[Future] = []
            try:
                try:
                    with f:
                        read_start = time.time_ns()
                        before = os.fstat(f.fileno())
                        if attempt + 1 < attempts and (attempt or _busy(before, read_start)):
                            held = _HeldAttempt(self)
                        futures, nread = self._chunk_file(f, before, held)
                        after = os.fstat(f.fileno())
                except OSError as exc:
                    self._warn(path, "read-error", f"read failed: {exc.strerror or exc}")
                    return None
                if frozen:
                    # Nothing writes to a read-only snapshot: a file changed just
                    # before it was taken is as final as one changed last year.
                    consistent = _same(before, after) and nread == after.st_size
                else:
                    consistent = _read_was_consistent(before, after, nread, read_start)
                if consistent:
                    if held is not None:
                        held.commit(futures)
                        held = None
                    return futures, before, False
            finally:
                if held is not None:
                    held.discard(futures)
            if attempt + 1 < attempts:
                self.stats.retries += 1
                _pause_past_a_tick(after)
        self._warn(path, "changed-during-read", _CHANGED_MESSAGE.format(attempts))
        return futures, after, True

    def _read_small(self, path: bytes, real: bytes, frozen: bool = False):
        """Worker: read and store a file expected to be one chunk, with the
        same consistency rules as _read_file. Returns _SKIPPED (warned),
        _GREW (no longer small: the walk thread reads it), or
        (blob id or None, stat, changed)."""
        attempts = 1 if frozen else 1 + max(0, self.read_retries)
        for attempt in range(attempts):
            f = self._open_source(path, real)
            if f is None:
                return _SKIPPED
            try:
                with f:
                    read_start = time.time_ns()
                    before = os.fstat(f.fileno())
                    if before.st_size > self.min_chunk:
                        return _GREW
                    data = f.read(self.min_chunk + 1)
                    after = os.fstat(f.fileno())
            except OSError as exc:
                self._warn(path, "read-error", f"read failed: {exc.strerror or exc}")
                return _SKIPPED
            if len(data) > self.min_chunk:
                return _GREW
            with self._lock:
                self.stats.bytes_read += len(data)
                self.progress.bytes_read += len(data)
            if frozen:
                consistent = _same(before, after) and len(data) == after.st_size
            else:
                consistent = _read_was_consistent(before, after, len(data), read_start)
            if consistent or attempt + 1 == attempts:
                blob_id = self._store_chunk(data) if data else None
                if consistent:
                    return blob_id, before, False
                self._warn(path, "changed-during-read", _CHANGED_MESSAGE.format(attempts))
                return blob_id, after, True
            with self._lock:
                self.stats.retries += 1
            _pause_past_a_tick(after)
        raise AssertionError("unreachable")

    def _chunk_file(
        self, f, st: os.stat_result, held: _HeldAttempt | None = None
    ) -> tuple[list[Future], int]:
        """Chunk futures for the file's content and the bytes it covered;
        with ``held``, the chunks are kept aside instead of stored."""
        submit = self._submit if held is None else held.submit
        futures: list[Future] = []
        size_hint = st.st_size
        if size_hint < self.min_chunk:
            # Small file: one read, one chunk (skips the chunker's set-up).
            data = f.read(self.min_chunk + 1)
            if len(data) <= self.min_chunk:
                self._account_read(len(data))
                if data:
                    futures.append(submit(data))
                return futures, len(data)
            # It grew: chunk it properly from the start.
            f.seek(0)
        if _SEEK_HOLES and st.st_blocks * 512 < size_hint // 2:
            return self._chunk_sparse(f, size_hint, held)
        nread = self._chunk_stream(f, futures, submit)
        return futures, nread

    def _chunk_stream(self, stream, futures: list[Future], submit=None) -> int:
        submit = submit or self._submit
        nread = 0
        for view in self.chunker.cut_stream(stream):
            self._check_cancel()
            data = bytes(view)
            nread += len(data)
            self._account_read(len(data))
            futures.append(submit(data))
            self._report()
        return nread

    def _chunk_sparse(
        self, f, size: int, held: _HeldAttempt | None = None
    ) -> tuple[list[Future], int]:
        """Sparse files (VM images, databases): holes of at least one maximum
        chunk become max-size zero chunks without reading or hashing them;
        data regions (with the rest of the holes) are chunked as usual. The
        content ids are the same kind as for any file, so restore needs no
        special case (it turns zero chunks back into holes)."""
        submit = self._submit if held is None else held.submit
        fd = f.fileno()
        max_size = self.repo.chunker_params.max_size
        futures: list[Future] = []
        covered = pos = 0
        while pos < size:
            try:
                data_start = min(os.lseek(fd, pos, os.SEEK_DATA), size)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    # No hole support here after all: read the rest normally,
                    # never guess that unknown content is zeros.
                    f.seek(pos)
                    covered += self._chunk_stream(f, futures, submit)
                    return futures, covered
                data_start = size  # ENXIO: only a hole after pos
            zero_chunks = (data_start - pos) // max_size
            if zero_chunks:
                zero = self._zero_chunk(max_size) if held is None else submit(bytes(max_size))
                futures.extend([zero] * zero_chunks)
                pos += zero_chunks * max_size
                covered += zero_chunks * max_size
                self._report()
            if pos >= size:
                break
            try:
                region_end = min(os.lseek(fd, data_start, os.SEEK_HOLE), size)
            except OSError:
                region_end = size
            region_end = max(region_end, data_start + 1)
            f.seek(pos)
            covered += self._chunk_stream(_BoundedReader(f, region_end - pos), futures, submit)
            pos = region_end
        return futures, covered

    def _zero_chunk(self, length: int) -> Future:
        fut = self._zero_chunks.get(length)
        if fut is None:
            fut = self._zero_chunks[length] = self._submit(bytes(length))
        return fut

    def _account_read(self, n: int) -> None:
        self.stats.bytes_read += n
        self.progress.bytes_read += n

    def _submit(self, data: bytes) -> Future:
        return self._submit_call(self._store_chunk, data)

    def _submit_call(self, fn, *args) -> Future:
        self.inflight.acquire()
        try:
            fut = self.pool.submit(fn, *args)
        except BaseException:
            self.inflight.release()
            raise
        fut.add_done_callback(lambda _f: self.inflight.release())
        return fut

    # --- workers ---------------------------------------------------------------------
    def _store_chunk(self, data: bytes) -> bytes:
        return self._store_blob(data, DATA)

    def _store_tree(self, data: bytes) -> bytes:
        return self._store_blob(data, TREE)

    def _store_blob(self, data: bytes, kind) -> bytes:
        """Deduplicate, compress and pack one blob; its id either way."""
        blob_id = self.repo.blob_id(data)
        with self._lock:
            if blob_id in self._claimed or self.repo.index.reusable(blob_id):
                return blob_id
            self._claimed.add(blob_id)
        method, payload = compress.thread_compressor(self.level).compress(data)
        self._pack_blob(blob_id, kind, method, len(data), payload)
        return blob_id

    def _pack_blob(self, blob_id: bytes, kind, method, raw_len: int, payload) -> None:
        """Add a compressed blob this run has claimed to its pack."""
        packer = self.data_packer if kind == DATA else self.tree_packer
        packer.add(blob_id, kind, method, raw_len, payload)
        with self._lock:
            if kind == DATA:
                self.stats.data_blobs_added += 1
            else:
                self.stats.tree_blobs_added += 1
            self.stats.bytes_added += len(payload) + OVERHEAD
            self.stats.bytes_added_raw += raw_len

    # --- packs, uploads and the index --------------------------------------------------
    def _on_pack_full(self, pack: FinishedPack) -> None:
        fut = self.upload_pool.submit(self._upload, pack)
        with self._index_lock:
            self._uploads.add(fut)
        fut.add_done_callback(self._upload_done)

    def _upload(self, pack: FinishedPack) -> None:
        try:
            try:
                self.repo.store.put(pack_key(pack.id), pack.data)
            except ObjectExists:
                pass  # same bytes, same name: already stored
            if self.repo.cache is not None and pack.entries and pack.entries[0].type == TREE:
                self.repo.cache.put("trees", pack.id, pack.data)
        finally:
            pack.release()
        with self._index_lock:
            self._unindexed[pack.id] = pack.entries
        self.repo.index.add_pack(pack.id, pack.entries)
        with self._lock:
            self.stats.packs_written += 1
            self.progress.bytes_added = self.stats.bytes_added
        # From the upload thread, so a long file cannot delay it: an
        # interrupted backup loses at most INDEX_EVERY_PACKS packs of work.
        self._write_index(final=False)

    def _upload_done(self, fut: Future) -> None:
        with self._index_lock:
            self._uploads.discard(fut)
        exc = fut.exception()
        if exc is not None:
            self._upload_errors.append(exc)

    def _write_index(self, final: bool) -> None:
        with self._index_lock:
            if not self._unindexed or (not final and len(self._unindexed) < INDEX_EVERY_PACKS):
                return
            packs, self._unindexed = self._unindexed, {}
        self.repo.save_index(packs)

    # --- trees -----------------------------------------------------------------------
    def _finalize_ready(self, block: bool) -> None:
        while self._ready:
            job = self._ready[0]
            if not job.all_done():
                if not block:
                    break
                pending = job.first_not_done()  # None if it finished meanwhile
                if pending is not None:
                    pending.result()  # waits; raises a worker's error
                continue
            self._ready.popleft()
            self._finalize(job)

    def _finalize(self, job: _DirJob) -> None:
        dropped = False
        for node, futures, small in job.pending:
            if small is None:
                node["content"] = [f.result().hex() for f in futures]
            elif not self._finish_small(node, futures[0].result(), *small):
                node["drop"] = dropped = True
        nodes = [n for n in job.nodes if "drop" not in n] if dropped else job.nodes
        tree_id = self._store_tree(encode_tree(nodes)).hex()
        if job.node is None:
            self._root_tree = bytes.fromhex(tree_id)
            return
        job.node["subtree"] = tree_id
        if job.prev_tree is None:
            self.stats.dirs_new += 1
        elif job.prev_tree == tree_id:
            self.stats.dirs_unchanged += 1
        else:
            self.stats.dirs_changed += 1

    def _finish_small(self, node: dict, result, path: bytes, real: bytes, had_file: bool) -> bool:
        """Fill a small file's node from its worker's result; False to drop it."""
        if result is _SKIPPED:
            return False
        if result is _GREW:  # rare: it grew past one chunk since the walk saw it
            read = self._read_file(path, real, self._frozen(path))
            if read is None:
                return False
            futures, st_read, changed = read
            content = [f.result().hex() for f in futures]
        else:
            blob_id, st_read, changed = result
            content = [blob_id.hex()] if blob_id is not None else []
        node.update(
            size=st_read.st_size,
            mtime_ns=st_read.st_mtime_ns,
            ctime_ns=st_read.st_ctime_ns,
            ino=st_read.st_ino,
            mode=statmod.S_IMODE(st_read.st_mode),
            content=content,
        )
        if changed:
            node["flags"] = [CHANGED_DURING_READ]
        self.stats.files_read += 1
        if had_file:
            self.stats.files_changed += 1
        else:
            self.stats.files_new += 1
        self.stats.total_files += 1
        self.stats.total_bytes += st_read.st_size
        return True

    # --- progress ----------------------------------------------------------------------
    def _report(self, force: bool = False) -> None:
        if self.progress_cb is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        self.progress.elapsed = now - self.t0
        self.progress.bytes_added = self.stats.bytes_added
        self.progress_cb(dataclasses.replace(self.progress))

    def _scan_totals(self) -> None:
        """Count files and bytes ahead of the backup, for ETA. Best effort."""
        files = size = 0
        stack = []
        for src in self.sources:
            real = self._real(src)
            try:
                st = os.lstat(real)
            except (OSError, TypeError):
                continue
            if statmod.S_ISDIR(st.st_mode):
                stack.append((src, real))
            elif statmod.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
        while stack and not self.cancel_scan and not self.cancel.is_set():
            path, real = stack.pop()
            try:
                with os.scandir(real) as it:
                    for e in it:
                        p = join_path(path, e.name)
                        if self.matcher and self.matcher.excluded(p, e.name):
                            continue
                        try:
                            if e.is_dir(follow_symlinks=False):
                                if self.flavour.windows and _junction(e):
                                    continue
                                stack.append((p, pathmap.join_native(real, e.name, self.flavour)))
                            elif e.is_file(follow_symlinks=False):
                                files += 1
                                size += e.stat(follow_symlinks=False).st_size
                        except OSError:
                            pass
            except OSError:
                pass
            self.progress.files_total, self.progress.bytes_total = files, size
        self.progress.files_total, self.progress.bytes_total = files, size
        self.progress.scan_done = True


class _HeldAttempt:
    """One read attempt's new chunks, compressed by the workers but kept aside
    (the first HOLD_IN_MEMORY bytes in memory, the rest in an unlinked
    temporary file) until the attempt is accepted.

    Without it every rejected attempt of a busy file was uploaded and stayed
    unreferenced until the next prune: a 64 MiB mailbox rewritten 8 times a
    second cost 4 uploads per backup. Blob ids are computed as usual, so the
    file's node is the same; only ``commit`` claims and packs the blobs."""

    def __init__(self, backup: _Backup):
        self.backup = backup
        self.spool = None  # the temporary file, opened past HOLD_IN_MEMORY
        self.lock = threading.Lock()
        #: blob id -> (method, raw length, payload in memory or None, file offset, size)
        self.entries: dict[bytes, tuple] = {}
        self.size = 0  # bytes held
        self.overflow = False  # no more room to hold: the rest is stored as read

    def submit(self, data: bytes) -> Future:
        return self.backup._submit_call(self._hold, data)

    def _hold(self, data: bytes) -> bytes:
        """Worker: the chunk's id; its compressed bytes spooled if new."""
        b = self.backup
        blob_id = b.repo.blob_id(data)
        with b._lock:
            if blob_id in b._claimed or b.repo.index.reusable(blob_id):
                return blob_id
        with self.lock:
            if blob_id in self.entries:
                return blob_id
        method, payload = compress.thread_compressor(b.level).compress(data)
        with self.lock:
            if blob_id in self.entries:
                return blob_id
            if not self.overflow:
                try:
                    self.entries[blob_id] = (method, len(data), *self._keep(payload))
                except OSError:
                    self.overflow = True
                else:
                    self.size += len(payload)
                    return blob_id
        self._store(blob_id, method, len(data), payload)
        return blob_id

    def _keep(self, payload) -> tuple:
        """(payload or None, offset, size); OSError when there is no room.
        Caller holds self.lock."""
        if self.size + len(payload) <= HOLD_IN_MEMORY:
            return payload, 0, len(payload)
        if self.size + len(payload) > HOLD_LIMIT:
            raise OSError(errno.EFBIG, "held attempt too large")
        if self.spool is None:
            # Unbuffered: a full disk shows at the write that did not fit,
            # never later at a flush, after the entry was recorded.
            self.spool = tempfile.TemporaryFile(prefix="cairn-attempt-", buffering=0)  # noqa: SIM115
        offset = self.spool.seek(0, os.SEEK_END)
        if self.spool.write(payload) != len(payload):  # a short write: the disk is full
            self.spool.truncate(offset)
            raise OSError(errno.ENOSPC, "no room to hold the attempt")
        return None, offset, len(payload)

    def _read(self, entry: tuple) -> bytes:
        _, _, payload, offset, size = entry
        if payload is not None:
            return payload
        self.spool.seek(offset)
        data = self.spool.read(size)
        if len(data) != size:
            raise EngineError("a held chunk could not be read back from the temporary file")
        return data

    def _close(self) -> None:
        if self.spool is not None:
            self.spool.close()
        self.entries = {}

    def _store(self, blob_id: bytes, method, raw_len: int, payload) -> None:
        b = self.backup
        with b._lock:
            if blob_id in b._claimed or b.repo.index.reusable(blob_id):
                return
            b._claimed.add(blob_id)
        b._pack_blob(blob_id, DATA, method, raw_len, payload)

    def _settle(self, futures: list[Future]) -> None:
        for fut in futures:
            fut.exception()  # waits; errors surface where the futures are read

    def commit(self, futures: list[Future]) -> None:
        """The attempt is the copy kept: store its chunks (walk thread)."""
        try:
            for fut in futures:
                fut.result()  # a worker's error fails the backup as for any chunk
            for blob_id, entry in self.entries.items():
                self._store(blob_id, entry[0], entry[1], self._read(entry))
        finally:
            self._close()

    def discard(self, futures: list[Future]) -> None:
        """The attempt is replaced: drop its chunks, nothing was uploaded."""
        self._settle(futures)
        with self.backup._lock:
            self.backup.stats.bytes_discarded += self.size
        self._close()


_SEEK_HOLES = hasattr(os, "SEEK_DATA") and hasattr(os, "SEEK_HOLE")
_JUNCTION = 0xA0000003  # IO_REPARSE_TAG_MOUNT_POINT (stat has it on Windows only)

_XATTRS = hasattr(os, "listxattr")
_SKIPPED = object()  # small file not stored (vanished, denied: warned)
_GREW = object()  # small file grew past one chunk: read by the walk thread
_CHANGED_MESSAGE = "kept changing while read ({} attempts); stored flagged as changed during read"


def _junction(entry: os.DirEntry) -> bool:
    # Windows fills DirEntry.stat from the directory listing: no extra call.
    return getattr(entry.stat(follow_symlinks=False), "st_reparse_tag", 0) == _JUNCTION


class _BoundedReader:
    """At most ``limit`` bytes of a file, through readinto (for the chunker)."""

    def __init__(self, f, limit: int):
        self.f = f
        self.left = limit

    def readinto(self, buf) -> int:
        if self.left <= 0:
            return 0
        view = memoryview(buf)
        if len(view) > self.left:
            view = view[: self.left]
        n = self.f.readinto(view) or 0
        self.left -= n
        return n


#: Kernels stamp mtime/ctime from a coarse clock (one tick is 1-10 ms on
#: Linux), so a write during a read can leave them unchanged if an earlier
#: write fell in the same tick. A read is trusted only if the file's ctime is
#: older than this margin when the read began. Filesystems with whole-second
#: timestamps (FAT, some network filesystems) need seconds.
TICK_MARGIN_NS = 20_000_000
COARSE_MARGIN_NS = 2_000_000_000
#: The kernel stamps ctime when a write(2) *starts*; one big in-place write
#: (a 64 MiB mailbox saved in one call, slowed by dirty-page throttling) can
#: still be copying long after. A read is trusted only once the last write
#: could have copied the whole file at this pace: measured on btrfs, 2 of 12
#: live reads of a 64 MiB file rewritten in one pwrite per pass were torn yet
#: passed the 20 ms rule (issue 15).
SLOW_WRITE_BYTES_PER_S = 100 * 1024 * 1024


def _timestamp_margin(st: os.stat_result) -> int:
    whole_seconds = st.st_ctime_ns % 1_000_000_000 == 0 and st.st_mtime_ns % 1_000_000_000 == 0
    if whole_seconds:
        return COARSE_MARGIN_NS
    write_time = st.st_size * 1_000_000_000 // SLOW_WRITE_BYTES_PER_S
    return min(COARSE_MARGIN_NS, max(TICK_MARGIN_NS, write_time))


def _recently_changed(st: os.stat_result, read_start_ns: int, margin_ns: int) -> bool:
    # ctime, not mtime: only the kernel sets it (mtime can be set to any date).
    # A ctime far in the future means a skewed (network) clock: no inference.
    # "Future" is measured from now, not from the start of the read: a read
    # that took longer than the skew allowance (a large file, a loaded PC)
    # must still distrust a file changed while it was being read.
    now_ns = time.time_ns()
    return read_start_ns - margin_ns <= st.st_ctime_ns <= now_ns + 1_000_000_000


def _read_was_consistent(
    before: os.stat_result, after: os.stat_result, nread: int, read_start_ns: int
) -> bool:
    """Whether a read can be trusted as one point-in-time copy of the file.
    A file changed within a timestamp tick of the read is not trusted even if
    its stat is unchanged: a write during the read may have left size, mtime
    and ctime exactly as they were."""
    return (
        _same(before, after)
        and nread == after.st_size
        and not _recently_changed(after, read_start_ns, _timestamp_margin(after))
    )


def _busy(st: os.stat_result, read_start_ns: int) -> bool:
    """Changed in the last seconds (or dated ahead): a read may well be
    replaced by a re-read, so it is held until accepted."""
    return st.st_ctime_ns >= read_start_ns - BUSY_NS


def _pause_past_a_tick(st: os.stat_result) -> None:
    """Before a re-read: long enough that a file which went quiet passes next
    time; jittered so a periodic writer does not stay in phase."""
    margin = _timestamp_margin(st)
    time.sleep((margin + random.randrange(margin // 2 + 1)) / 1e9)


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (
        a.st_size == b.st_size
        and a.st_mtime_ns == b.st_mtime_ns
        and a.st_ctime_ns == b.st_ctime_ns
        and a.st_ino == b.st_ino
    )


def _kind(exc: OSError) -> str:
    return "permission-denied" if isinstance(exc, PermissionError) else "read-error"


def _normalise_sources(paths, flavour: pathmap.Flavour) -> list[bytes]:
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


def _match_case(plan: dict, real: bytes) -> dict:
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
    if a is _SOURCE or b is _SOURCE:
        return _SOURCE
    out = dict(a)
    for name, sub in b.items():
        out[name] = _merge_plans(out[name], sub) if name in out else sub
    return out


def _username() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""


def _version() -> str:
    from agent import __version__

    return __version__
