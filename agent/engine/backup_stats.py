"""What a backup counts, reports and warns about, shared by its units.

The walk, the file reader, the pack uploader and the tree writer each add to
one :class:`Tally`; the progress callback sees a copy at most every
``PROGRESS_INTERVAL`` seconds.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.engine import paths as pathmap
from agent.engine.snapshot import Snapshot

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


class Tally:
    """The run's stats, progress and warnings. Counters touched by worker
    threads are changed under ``lock``; the walk thread's own counters are
    not (only it writes them)."""

    def __init__(
        self,
        flavour: pathmap.Flavour,
        progress_cb: Callable[[BackupProgress], None] | None,
    ):
        self.flavour = flavour
        self.progress_cb = progress_cb
        self.stats = BackupStats()
        self.progress = BackupProgress()
        self.warnings: list[BackupWarning] = []
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self._last_report = 0.0

    def warn(self, path: bytes, kind: str, message: str) -> None:
        self.warnings.append(
            BackupWarning(pathmap.native_display(path, self.flavour), kind, message)
        )

    def read(self, n: int) -> None:
        """Bytes read from disk by the walk thread."""
        self.stats.bytes_read += n
        self.progress.bytes_read += n

    def file_done(self, size: int) -> None:
        self.stats.total_files += 1
        self.stats.total_bytes += size
        self.progress.files_done += 1
        self.progress.bytes_done += size

    def report(self, force: bool = False) -> None:
        if self.progress_cb is None:
            return
        now = time.monotonic()
        if not force and now - self._last_report < PROGRESS_INTERVAL:
            return
        self._last_report = now
        self.progress.elapsed = now - self.t0
        self.progress.bytes_added = self.stats.bytes_added
        self.progress_cb(dataclasses.replace(self.progress))
