"""Restore: files of a snapshot back onto disk, verified as they are written.

Each file goes to ``target + repository path`` (``target="/"`` restores in
place; docs/format.md, "Paths"): on Windows ``D:\\restore\\C\\Users\\ana\\…``,
in place to the original drive or share. Names the destination cannot hold
(a ``:`` from Linux onto Windows) are escaped (``paths.escape_name``); names
that differ only in case, restored onto a case-insensitive volume, get a
``~N`` suffix (a ``renamed`` warning).

The work is shared as in restic's restorer: this module selects what to
restore from the trees and makes directories, links and special files;
``restore_fetch`` (the pack fetcher) reads the chunks pack by pack in
parallel, neighbouring blobs coalesced into one ranged read, each blob
authenticated and its id re-computed from the plaintext; ``restore_write``
(the file writer) puts them into temporary files, all-zero chunks as holes,
and renames each file over its destination only when complete: an
interrupted restore never leaves a half-written file under a real name, and
an existing file is replaced atomically or not at all.

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
later writes out of it; Windows junctions are held to the same rule). Both
rules live in one place, ``restore_dest.Destinations``.
"""

from __future__ import annotations

import dataclasses
import os
import stat as statmod
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.engine import paths as pathmap
from agent.engine.errors import CorruptObject, EngineError, RestoreCancelled
from agent.engine.repository import Repository
from agent.engine.restore_dest import Destinations, IncludeMatcher
from agent.engine.restore_fetch import PackFetcher, Wanted
from agent.engine.restore_write import FileJob, FilesWriter, MetadataWriter, relink
from agent.engine.snapshot import Snapshot
from agent.engine.store import StoreError
from agent.engine.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SPECIAL_TYPES, SYMLINK, Node

OVERWRITE_POLICIES = ("never", "if-newer", "always")


@dataclass(frozen=True)
class RestoreOptions:
    """How to restore (the snapshot and the target are arguments of their own).

    ``include``: patterns of what to restore (:class:`IncludeMatcher`; none:
    everything). ``overwrite``: "never" | "if-newer" | "always" (True =
    "always", False = "never"). ``restore_owner``: chown to the recorded
    owner; None: only when running as root. ``progress`` is called from the
    restore's threads at most every 0.25 s; ``cancel`` stops it
    (RestoreCancelled). ``workers``: parallel pack reads."""

    include: tuple[str, ...] = ()
    overwrite: str = "never"
    progress: Callable[[RestoreProgress], None] | None = None
    cancel: threading.Event | None = None
    workers: int = 4
    restore_owner: bool | None = None

    def __post_init__(self):
        overwrite = self.overwrite
        if isinstance(overwrite, bool):
            overwrite = "always" if overwrite else "never"
        if overwrite not in OVERWRITE_POLICIES:
            raise ValueError(f"overwrite must be one of {OVERWRITE_POLICIES}")
        object.__setattr__(self, "overwrite", overwrite)
        object.__setattr__(self, "include", tuple(self.include or ()))
        if self.restore_owner is None:
            root = hasattr(os, "geteuid") and os.geteuid() == 0
            object.__setattr__(self, "restore_owner", root)


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


def run_restore(
    repo: Repository,
    snapshot: Snapshot | str,
    target: str | bytes | None,
    options: RestoreOptions | None = None,
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
    drive or share on Windows), as ``options`` say; without ``options``, the
    keywords make them (see :class:`RestoreOptions`)."""
    if options is None:
        options = RestoreOptions(
            include=tuple(include),
            overwrite=overwrite,  # type: ignore[arg-type]  # normalised by the options
            progress=progress,
            cancel=cancel,
            workers=workers,
            restore_owner=restore_owner,
        )
    if not isinstance(snapshot, Snapshot):
        snapshot = repo.find_snapshot(snapshot)
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
    return _Restore(repo, snapshot, target, options).run()


class _Restore:
    """One restore: selects nodes from the trees, makes directories, links and
    special files itself, and has the pack fetcher and the file writer do
    the files."""

    def __init__(self, repo: Repository, snapshot: Snapshot, target: bytes, opts: RestoreOptions):
        self.repo = repo
        self.snapshot = snapshot
        self.opts = opts
        self.src = pathmap.flavour_named(snapshot.path_flavour)  # the snapshot's paths
        self.dst = pathmap.current()  # this machine's
        self.dests = Destinations(target, self.src, self.dst, self.issue)
        self.matcher = IncludeMatcher(opts.include, self.src)
        self.cancel = opts.cancel or threading.Event()
        self.meta = MetadataWriter(bool(opts.restore_owner), self.issue)
        self.writer = FilesWriter(self.meta, self._file_finished)
        self.stats = RestoreStats()
        self.progress = RestoreProgress()
        self.warnings: list[RestoreIssue] = []
        self.errors: list[RestoreIssue] = []
        self._lock = threading.Lock()
        self._last_report = 0.0
        self._dirs_made: set[bytes] = set()  # repository paths of directories made
        self._restored: set[bytes] = set()  # destinations written by this restore

    def issue(self, kind: str, path: bytes, message: str, error: bool = False):
        item = RestoreIssue(pathmap.native_display(path, self.src), kind, message)
        with self._lock:
            (self.errors if error else self.warnings).append(item)

    def run(self) -> RestoreResult:
        t0 = self.t0 = time.monotonic()
        self.dests.prepare_target()
        files, links, specials, dirs = self._select()
        self.progress.files_total = len(files)
        self.progress.bytes_total = sum(n.file_size for _, n in files)
        for path, _node in dirs:
            self._make_dir(path)
        wanted = self._prepare_files(files)
        fetcher = PackFetcher(
            self.repo,
            self.writer,
            workers=self.opts.workers,
            cancel=self.cancel,
            report=self._report,
        )
        fetcher.fetch(wanted)
        relink(files, self.dests, self._restored)
        for path, node in links:
            self._make_link(path, node)
        for path, node in specials:
            self._make_special(path, node)
        # Directory metadata last and deepest first: writing into a directory
        # changes its mtime, and a read-only mode would block the writes.
        for path, node in reversed(dirs):
            if path in self._dirs_made:  # never through a link refused on the way
                self.meta.apply(self.dests[path], node, is_link=False)
        self.stats.duration = round(time.monotonic() - t0, 3)
        self._report(force=True)
        return RestoreResult(
            self.snapshot.id,
            os.fsdecode(self.dests.target or self.dst.sep),
            self.stats,
            self.warnings,
            self.errors,
        )

    # --- selecting -------------------------------------------------------------------
    def _select(self):
        """(files, links, specials, dirs) to restore, each a list of (path, node)."""
        picked: dict[str, list[tuple[bytes, Node]]] = {
            "files": [],
            "links": [],
            "specials": [],
            "dirs": [],
        }
        stack: list[tuple[bytes, bytes, str | bytes, bool]] = [
            (b"", self.dests.target, self.snapshot.tree, not self.matcher)
        ]
        while stack:
            base, base_dest, tree_id, selected = stack.pop()
            try:
                nodes = self.repo.load_nodes(tree_id)
            except (CorruptObject, StoreError, ValueError) as exc:
                self.issue("damaged", base or b"/", f"cannot read directory listing: {exc}", True)
                continue
            stack.extend(self._select_in(base, base_dest, nodes, selected, picked))
        picked["dirs"].sort(key=lambda item: item[0])
        return picked["files"], picked["links"], picked["specials"], picked["dirs"]

    def _select_in(self, base, base_dest, nodes: list[Node], selected: bool, picked):
        """Sort one directory's nodes into ``picked``; the subdirectories to visit."""
        taken: dict[str, int] = {}  # case-folded destination names in this directory
        seen: set[bytes] = set()
        subdirs = []
        for node in nodes:
            path = base + b"/" + node.name
            sel = selected or self.matcher.matches(path)
            if node.type != DIR and not sel:
                continue
            name = self.dests.name_for(node.name, base, seen, taken)
            if name is None:
                continue
            dest = self.dests.place(base_dest, path, name)
            if dest is None and node.type != DIR:
                self.issue("unsupported", path, "no place for it on this system", True)
                continue
            if node.type == DIR:
                if sel and dest is not None:
                    picked["dirs"].append((path, node))
                if node.subtree:
                    subdirs.append((path, dest, node.subtree, sel))
            elif node.type == FILE:
                picked["files"].append((path, node))
            elif node.type == SYMLINK:
                picked["links"].append((path, node))
            elif node.type in SPECIAL_TYPES:
                picked["specials"].append((path, node))
        return subdirs

    # --- directories and existing files ------------------------------------------------
    def _make_dir(self, path: bytes) -> None:
        try:
            self.dests.safe_dir(self.dests[path])
            self.stats.dirs += 1
            self._dirs_made.add(path)
        except OSError as exc:
            self.issue("error", path, f"cannot create directory: {exc.strerror or exc}", True)

    def _existing_allows(self, path: bytes, node: Node) -> bool:
        """Whether the destination may be (re)written; warns when not."""
        try:
            st = os.lstat(self.dests[path])
        except FileNotFoundError:
            return True
        if self.opts.overwrite == "always" and not statmod.S_ISDIR(st.st_mode):
            return True
        if statmod.S_ISDIR(st.st_mode):
            self.issue("exists", path, "a directory exists at this path; not replaced")
            return False
        if self.opts.overwrite == "if-newer":
            if st.st_size == node.size and st.st_mtime_ns == node.mtime_ns:
                return False  # identical by metadata: nothing to do, no warning
            if (node.mtime_ns or 0) > st.st_mtime_ns:
                return True
            self.issue("exists", path, "the local file is newer; not overwritten")
            return False
        self.issue("exists", path, "exists; not overwritten (use overwrite)")
        return False

    # --- files -----------------------------------------------------------------------
    def _prepare_files(self, files: list[tuple[bytes, Node]]) -> Wanted:
        """Create each file's job; map blob id -> (job, offset) for the fetcher."""
        wanted: Wanted = {}
        index = self.repo.index
        for path, node in files:
            if self.cancel.is_set():
                raise RestoreCancelled("restore cancelled")
            if not self._existing_allows(path, node):
                self.stats.files_skipped += 1
                self._file_done(node.file_size)
                continue
            if node.changed_during_read:
                self.issue(
                    "changed-during-read",
                    path,
                    "this file kept changing while it was backed up; its content may be inconsistent",
                )
            job = self._file_job(path, node)
            if job is None:
                continue
            offset = 0
            for blob_id in node.chunk_ids:
                wanted.setdefault(blob_id, []).append((job, offset))
                offset += index.raw_length(blob_id)
            if offset != job.size:
                # The recorded size disagrees with the chunks: trust the chunks.
                job.size = offset
        return wanted

    def _file_job(self, path: bytes, node: Node) -> FileJob | None:
        """The job for one file; None when it cannot be restored (reported) or
        was finished here already (a file without chunks)."""
        content = node.chunk_ids
        missing = [c for c in content if c not in self.repo.index]
        if missing:
            message = f"{len(missing)} of {len(content)} chunks are missing from the repository"
            self.issue("missing", path, message, True)
            self.stats.files_failed += 1
            return None
        try:
            self.dests.ensure_parent(path)
        except OSError as exc:
            self.issue("error", path, f"cannot create directory: {exc.strerror or exc}", True)
            self.stats.files_failed += 1
            return None
        dest = self.dests[path]
        job = FileJob(path, dest, self.dests.temp_beside(dest), node, len(content))
        if content:
            return job
        try:
            self.writer.create_empty(job)
        except OSError as exc:
            self.issue("error", path, f"cannot create file: {exc.strerror or exc}", True)
            self.stats.files_failed += 1
        return None

    def _file_finished(self, job: FileJob, problem: tuple[str, str] | None) -> None:
        """The file writer's report on one file (from its threads)."""
        if problem is not None:
            kind, message = problem
            self.issue(kind, job.path, message, True)
            with self._lock:
                self.stats.files_failed += 1
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
    def _make_link(self, path: bytes, node: Node) -> None:
        dest = self.dests[path]
        if not self._existing_allows(path, node):
            self.stats.files_skipped += 1
            return
        try:
            self.dests.ensure_parent(path)
            if node.target is None:
                raise OSError(0, "the stored link has no target")
            if os.path.lexists(dest):
                tmp = self.dests.temp_beside(dest)
                os.symlink(node.target, tmp)
                os.replace(tmp, dest)
            else:
                os.symlink(node.target, dest)
            self.meta.apply(dest, node, is_link=True)
            self.stats.symlinks += 1
        except OSError as exc:
            self.issue("error", path, f"cannot create symlink: {exc.strerror or exc}", True)

    def _make_special(self, path: bytes, node: Node) -> None:
        kind = node.type
        dest = self.dests[path]
        if os.path.lexists(dest):
            self.issue("exists", path, "exists; not replaced")
            return
        mode = 0o600 if node.mode is None else node.mode
        try:
            self.dests.ensure_parent(path)
            if kind == FIFO and hasattr(os, "mkfifo"):
                os.mkfifo(dest, mode)
            elif kind in (CHARDEV, BLOCKDEV) and hasattr(os, "mknod") and os.geteuid() == 0:
                flag = statmod.S_IFCHR if kind == CHARDEV else statmod.S_IFBLK
                os.mknod(dest, flag | mode, node.rdev or 0)
            else:
                self.issue("unsupported", path, f"{kind} not restored")
                return
            self.meta.apply(dest, node, is_link=False)
            self.stats.special += 1
        except OSError as exc:
            self.issue("error", path, f"cannot create {kind}: {exc.strerror or exc}", True)

    def _report(self, force: bool = False) -> None:
        if self.opts.progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_report < 0.25:
            return
        self._last_report = now
        self.progress.elapsed = now - self.t0
        self.opts.progress(dataclasses.replace(self.progress))


__all__ = [
    "EngineError",
    "IncludeMatcher",
    "RestoreCancelled",
    "RestoreIssue",
    "RestoreOptions",
    "RestoreProgress",
    "RestoreResult",
    "RestoreStats",
    "run_restore",
]
