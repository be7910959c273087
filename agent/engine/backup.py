"""Backup: walk the sources, store new content, write trees, index and snapshot.

The work is split as in restic's archiver, one unit per module:

* the walk (here, with listing, excludes, plans, node metadata and the
  totals scanner in ``walker``) decides per entry what to record and, per
  file, whether it must be read (incremental: size, mtime, ctime and inode
  against the parent snapshot's typed nodes);
* the file reader (``backup_read``, held attempts in ``backup_hold``) reads
  files consistently and cuts them into chunks; small files (one chunk, most
  of a PC's files) are read and stored whole by the workers, so their I/O
  waits overlap each other and the walk;
* the pack uploader (``backup_upload``) dedups, compresses and encrypts
  chunks on a pool of worker threads (one per core), split by chunk, not by
  file, so one huge file keeps both cores busy; full packs go to upload
  threads; bounded chunks in flight and pack buffers hold reading back when
  storage is slow, so memory stays bounded (~100 MiB at the defaults);
* the tree writer (``backup_tree``) writes each directory's tree when its
  files' chunks are done, in post-order.

Index objects are written after the packs they name are stored; the
snapshot is written last. A crash at any point leaves the repository valid.
"""

from __future__ import annotations

import getpass
import os
import stat as statmod
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agent.engine import paths as pathmap
from agent.engine.backup_parent import ParentTrees, find_parent
from agent.engine.backup_read import GREW, READ_RETRIES, SKIPPED, FileReader, _kind
from agent.engine.backup_stats import (
    BackupProgress,
    BackupResult,
    BackupStats,
    BackupWarning,
    Tally,
)
from agent.engine.backup_tree import DirJob, TreeWriter
from agent.engine.backup_upload import PackUploader
from agent.engine.errors import BackupCancelled, EngineError
from agent.engine.repository import Repository, default_hostname
from agent.engine.snapshot import Snapshot, utcnow_iso
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
    Node,
    join_path,
)
from agent.engine.walker import (
    SOURCE,
    XATTRS,
    ExcludeMatcher,
    OwnerNames,
    is_junction,
    list_dir,
    match_case,
    node_type,
    normalise_sources,
    plan_sources,
    read_xattrs,
    scan_totals,
)

__all__ = [
    "BackupOptions",
    "BackupProgress",
    "BackupResult",
    "BackupStats",
    "BackupWarning",
    "run_backup",
]


@dataclass(frozen=True)
class BackupOptions:
    """How to back up (the repository and the paths are arguments of their own).

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
    * ``hostname``: None for this PC's; ``workers``: None for one per core
      (at most 8); ``estimate``: count totals in the background for progress.
    """

    excludes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    parent: str | None = "auto"
    progress: Callable[[BackupProgress], None] | None = None
    translate: Callable[[str], str] | None = None
    cancel: threading.Event | None = None
    hostname: str | None = None
    workers: int | None = None
    read_retries: int = READ_RETRIES
    estimate: bool = True
    frozen: Callable[[str], bool] | None = None

    def __post_init__(self):
        # Lists are accepted (what callers have at hand) and kept as tuples,
        # so options stay immutable.
        object.__setattr__(self, "excludes", tuple(self.excludes))
        object.__setattr__(self, "tags", tuple(self.tags))


def run_backup(
    repo: Repository,
    paths: Iterable[str | bytes],
    options: BackupOptions | None = None,
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
    """Back up ``paths`` (absolute; relative ones are made absolute) into
    ``repo`` as ``options`` say; without ``options``, the keywords make them
    (see :class:`BackupOptions`)."""
    if options is None:
        options = BackupOptions(
            excludes=tuple(excludes),
            tags=tuple(tags),
            parent=parent,
            progress=progress,
            translate=translate,
            cancel=cancel,
            hostname=hostname,
            workers=workers,
            read_retries=read_retries,
            estimate=estimate,
            frozen=frozen,
        )
    return _Backup(repo, paths, options).run()


class _Backup:
    """One run: the walk, composing the reader, uploader and tree writer."""

    def __init__(self, repo: Repository, paths, options: BackupOptions):
        self.repo = repo
        self.options = options
        self.flavour = pathmap.current()
        self.sources = normalise_sources(paths, self.flavour)  # repository paths
        if not self.sources:
            raise EngineError("nothing to back up: no paths given")
        self.native_sources = [pathmap.to_native(p, self.flavour) for p in self.sources]
        self.matcher = ExcludeMatcher(options.excludes, self.flavour)
        self.cancel = options.cancel or threading.Event()
        self.hostname = options.hostname or default_hostname()
        frozen = options.frozen
        #: sources read from a read-only snapshot, decided once per source
        self.frozen_sources = [
            src
            for src, native in zip(self.sources, self.native_sources, strict=True)
            if frozen is not None and frozen(native)
        ]
        self.tally = Tally(self.flavour, options.progress)
        self.stats = self.tally.stats
        self.owners = OwnerNames()
        self._hardlinks: dict[tuple[int, int], bytes] = {}
        self._scan_stop = False  # stops the totals scanner when the backup ends

    # --- driver -------------------------------------------------------------------
    def run(self) -> BackupResult:
        t0 = self.tally.t0 = time.monotonic()
        started = utcnow_iso()
        parent = find_parent(
            self.repo, self.options.parent, self.hostname, self.native_sources, self.flavour
        )
        self.parents = ParentTrees(self.repo, parent)
        workers = self.options.workers or max(1, min(os.cpu_count() or 1, 8))
        self.uploader = PackUploader(self.repo, self.tally, workers)
        self.reader = FileReader(
            self.uploader,
            self.tally,
            self.repo.chunker_params,
            self.options.read_retries,
            self._check_cancel,
        )
        self.trees = TreeWriter(self.uploader, self.stats, self._finish_small)
        if self.options.progress is not None and self.options.estimate:
            threading.Thread(target=self._scan_totals, daemon=True, name="cairn-scan").start()
        try:
            try:
                self._walk()
                self.trees.finalize_ready(block=True)
            except BaseException:
                self.uploader.drain(abort=True)
                raise
            self.uploader.drain(abort=False)
        finally:
            self.uploader.close()
            self._scan_stop = True
        assert self.trees.root is not None
        self.stats.duration = round(time.monotonic() - t0, 3)
        snapshot = self._snapshot(started, parent)
        snapshot_id = self.repo.save_snapshot(snapshot)
        self.tally.report(force=True)
        parent_id = parent.id if parent else None
        return BackupResult(snapshot_id, snapshot, self.stats, self.tally.warnings, parent_id)

    def _snapshot(self, started: str, parent: Snapshot | None) -> Snapshot:
        warnings = self.tally.warnings
        return Snapshot(
            tree=self.trees.root.hex(),
            paths=self.native_sources,
            path_flavour=self.flavour.name,
            hostname=self.hostname,
            time=started,
            end_time=utcnow_iso(),
            username=_username(),
            tags=list(self.options.tags),
            excludes=list(self.options.excludes),
            parent=parent.id if parent else None,
            stats=self.stats.to_dict(),
            warnings=[w.to_dict() for w in warnings[: Snapshot.MAX_WARNINGS]],
            warnings_total=len(warnings),
            program=f"cairn-agent {_version()}",
        )

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise BackupCancelled("backup cancelled")
        self.uploader.raise_if_failed()

    # --- walking ---------------------------------------------------------------------
    def _real(self, path: bytes) -> bytes | None:
        """The native path to read a repository path from; None for levels
        of the repository namespace that are no directory (``/UNC``)."""
        native = pathmap.to_native(path, self.flavour)
        if native is None:
            return None
        if self.options.translate is not None:
            native = self.options.translate(native)
        return pathmap.long_path(os.fsencode(native), self.flavour)

    def _frozen(self, path: bytes) -> bool:
        """Whether a repository path is read from a read-only snapshot."""
        return any(
            src == b"/" or path == src or path.startswith(src + b"/") for src in self.frozen_sources
        )

    def _walk(self) -> None:
        prev_root, prev_tree = self.parents.root(), self.parents.root_id
        if b"/" in self.sources:  # the whole filesystem: the root is listed, not planned
            real = self._real(b"")
            root = DirJob(b"", real, None, list_dir(real), None, prev_root, prev_tree)
        else:
            plan = plan_sources(self.sources)
            entries = [(n, None) for n in sorted(plan)]
            root = DirJob(b"", self._real(b"") or b"", None, entries, plan, prev_root, prev_tree)
        stack = [root]
        while stack:
            job = stack[-1]
            if job.i < len(job.entries):
                self._check_cancel()
                name, entry = job.entries[job.i]
                job.i += 1
                child = self._entry(job, name)
                if child is not None:
                    stack.append(child)
                self.trees.finalize_ready(block=False)
                self.tally.report()
            else:
                stack.pop()
                self.trees.listed(job)

    def _entry(self, job: DirJob, name: bytes) -> DirJob | None:
        """Record one entry of ``job``; a DirJob when it is a directory to walk."""
        path = join_path(job.path, name)
        sub_plan = job.plan.get(name) if job.plan is not None else None
        in_plan = job.plan is not None
        if not in_plan and self.matcher and self.matcher.excluded(path, name):
            return None
        real = self._real(path) if in_plan else pathmap.join_native(job.real, name, self.flavour)
        prev = job.prev.get(name) if job.prev else None
        if real is None:  # /UNC, /UNC/<server>: a directory node without metadata
            node = Node(name, DIR)
            job.nodes.append(node)
            prev_tree = prev.subtree if prev is not None else None
            entries = [(n, None) for n in sorted(sub_plan)]
            prev_nodes = self.parents.by_name(prev_tree)
            return DirJob(path, b"", node, entries, sub_plan, prev_nodes, prev_tree)
        try:
            st = os.lstat(real)
        except FileNotFoundError:
            if in_plan and sub_plan is SOURCE:
                self.tally.warn(path, "vanished", "source path does not exist")
            elif not in_plan:
                self.tally.warn(path, "vanished", "vanished before it could be read")
            return None
        except OSError as exc:
            self.tally.warn(path, _kind(exc), f"cannot stat: {exc.strerror or exc}")
            return None
        if isinstance(sub_plan, dict) and not statmod.S_ISDIR(st.st_mode):
            return None  # a path above a source is not a directory: nothing below it
        mode = st.st_mode
        if is_junction(st) and not isinstance(sub_plan, dict):
            # A Windows junction (mount point) is recorded like a symlink and
            # never followed: user profiles hold legacy ones that loop.
            mode = statmod.S_IFLNK | statmod.S_IMODE(mode)
        node = self.owners.node(name, node_type(mode), st)
        if XATTRS:
            self._read_xattrs(real, node, path)
        if statmod.S_ISDIR(mode):
            return self._dir(job, node, path, real, sub_plan, prev)
        if statmod.S_ISREG(mode):
            self._file(job, node, st, path, real, prev)
            return None
        return self._other(job, node, st, path, real)

    def _read_xattrs(self, real: bytes, node: Node, path: bytes) -> None:
        """Best effort: a filesystem without them is normal, an unreadable
        one a warning."""
        try:
            node.xattrs = read_xattrs(real)
        except OSError as exc:
            self.tally.warn(path, "read-error", f"cannot read extended attributes: {exc.strerror}")

    def _dir(self, job: DirJob, node: Node, path, real, sub_plan, prev) -> DirJob | None:
        job.nodes.append(node)
        prev_nodes = prev_tree = None
        if prev is not None and prev.type == DIR:
            prev_tree = prev.subtree
            prev_nodes = self.parents.by_name(prev_tree)
        if isinstance(sub_plan, dict):
            if self.flavour.case_insensitive:
                sub_plan = match_case(sub_plan, real)
            entries = [(n, None) for n in sorted(sub_plan)]
            return DirJob(path, real, node, entries, sub_plan, prev_nodes, prev_tree)
        try:
            entries = list_dir(real)
        except FileNotFoundError:
            job.nodes.pop()
            self.tally.warn(path, "vanished", "directory vanished before it could be listed")
            return None
        except OSError as exc:
            node.flags = [UNREADABLE]
            msg = f"cannot list directory: {exc.strerror or exc}"
            self.tally.warn(path, "unreadable-dir", msg)
            entries = []
        return DirJob(path, real, node, entries, None, prev_nodes, prev_tree)

    def _other(self, job: DirJob, node: Node, st, path: bytes, real: bytes) -> None:
        """Symlinks, FIFOs, sockets and devices: recorded, never opened."""
        self.stats.other_entries += 1
        if node.type == SYMLINK:
            try:
                node.target = os.readlink(real)
            except FileNotFoundError:
                self.tally.warn(path, "vanished", "symlink vanished before it could be read")
                return None
            except OSError as exc:
                msg = f"cannot read symlink: {exc.strerror or exc}"
                self.tally.warn(path, _kind(exc), msg)
                return None
        elif node.type in (CHARDEV, BLOCKDEV):
            node.rdev = st.st_rdev
        elif node.type not in (FIFO, SOCKET):
            return None
        job.nodes.append(node)
        return None

    # --- files ------------------------------------------------------------------------
    def _file(self, job: DirJob, node: Node, st, path: bytes, real: bytes, prev) -> None:
        self.tally.progress.current = pathmap.native_display(path, self.flavour)
        if st.st_nlink > 1:
            # Hard links: later names point at the first one seen (the walk is
            # sorted, so this is stable); content is stored once by dedup anyway.
            first = self._hardlinks.setdefault((st.st_dev, st.st_ino), path)
            if first != path:
                node.link_to = first
        if self.parents.unchanged(prev, st):
            node.size = st.st_size
            node.content = prev.content
            job.nodes.append(node)
            self.stats.files_unchanged += 1
            self.tally.file_done(st.st_size)
            return
        had_file = prev is not None and prev.type == FILE
        if st.st_size < self.reader.min_chunk:
            # Small files (most of a PC's files) are opened, read and stored
            # whole by the workers, so their I/O waits overlap; the walk goes on.
            frozen = self._frozen(path)
            fut = self.uploader.submit_call(self.reader.read_small, path, real, frozen)
            job.nodes.append(node)
            job.pending.append((node, [fut], (path, real, had_file)))
            self.tally.progress.files_done += 1
            self.tally.progress.bytes_done += st.st_size
            return
        read = self.reader.read_file(path, real, self._frozen(path))
        if read is None:
            return
        _fill(node, read.stat, read.changed)
        job.nodes.append(node)
        job.pending.append((node, read.futures, None))
        self._counted(had_file)
        self.tally.file_done(read.stat.st_size)

    def _counted(self, had_file: bool) -> None:
        self.stats.files_read += 1
        if had_file:
            self.stats.files_changed += 1
        else:
            self.stats.files_new += 1

    def _finish_small(self, node: Node, result, small: tuple) -> bool:
        """Fill a small file's node from its worker's result; False to drop it."""
        path, real, had_file = small
        if result is SKIPPED:
            return False
        if result is GREW:  # rare: it grew past one chunk since the walk saw it
            read = self.reader.read_file(path, real, self._frozen(path))
            if read is None:
                return False
            st_read, changed = read.stat, read.changed
            content = [f.result() for f in read.futures]
        else:
            blob_id, st_read, changed = result
            content = [blob_id] if blob_id is not None else []
        _fill(node, st_read, changed)
        node.content = content
        self._counted(had_file)
        self.stats.total_files += 1
        self.stats.total_bytes += st_read.st_size
        return True

    # --- progress ----------------------------------------------------------------------
    def _scan_totals(self) -> None:
        """Count files and bytes ahead of the backup, for ETA. Best effort."""
        progress = self.tally.progress

        def update(files: int, size: int) -> None:
            progress.files_total, progress.bytes_total = files, size

        sources = [(src, self._real(src)) for src in self.sources]
        totals = scan_totals(
            sources,
            self.matcher,
            self.flavour,
            update,
            lambda: self._scan_stop or self.cancel.is_set(),
        )
        update(*totals)
        progress.scan_done = True


def _fill(node: Node, st: os.stat_result, changed: bool) -> None:
    """A read file's node from the stat its content matches."""
    node.size = st.st_size
    node.mtime_ns = st.st_mtime_ns
    node.ctime_ns = st.st_ctime_ns
    node.ino = st.st_ino
    node.mode = statmod.S_IMODE(st.st_mode)
    if changed:
        node.flags = [CHANGED_DURING_READ]


def _username() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""


def _version() -> str:
    from agent import __version__

    return __version__
