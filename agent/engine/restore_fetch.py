"""The pack fetcher of a restore: the chunks files need, read pack by pack.

Wanted blobs are grouped by pack, and neighbouring blobs of one pack (closer
than ``COALESCE_GAP``, within the store's ``max_read_range``) are read in one
ranged request; the ranges are fetched by ``workers`` threads. Every blob is
authenticated and its id re-computed from the plaintext (``open_blob``)
before the file writer sees it; a blob that cannot be read or verified fails
the files that use it, never the restore.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from agent.engine.errors import CorruptObject, RestoreCancelled
from agent.engine.index import IndexEntry
from agent.engine.pack import pack_key
from agent.engine.repository import Repository
from agent.engine.restore_write import FileJob, FilesWriter
from agent.engine.store import StoreError

#: blobs of one pack closer than this are fetched in one ranged read
COALESCE_GAP = 256 * 1024

#: blob id -> the files (and offsets in them) that need it
Wanted = dict[bytes, list[tuple[FileJob, int]]]
#: (offset, length, blob id, index entry) of one blob in a pack
Blob = tuple[int, int, bytes, IndexEntry]


def plan_reads(repo: Repository, blob_ids, max_range: int) -> list[tuple[str, list[Blob]]]:
    """The ranged reads that fetch ``blob_ids``: (pack id, blobs in offset
    order), each group one request of at most ``max_range`` bytes (a single
    larger blob is one request of its own)."""
    by_pack: dict[str, list[Blob]] = {}
    for blob_id in blob_ids:
        e = repo.index.get(blob_id)
        by_pack.setdefault(e.pack_id, []).append((e.offset, e.length, blob_id, e))
    reads = []
    for pack_id, blobs in by_pack.items():
        blobs.sort()
        group = [blobs[0]]
        for b in blobs[1:]:
            start = group[0][0]
            end = group[-1][0] + group[-1][1]
            if b[0] - end <= COALESCE_GAP and b[0] + b[1] - start <= max_range:
                group.append(b)
            else:
                reads.append((pack_id, group))
                group = [b]
        reads.append((pack_id, group))
    return reads


class PackFetcher:
    """Reads the planned ranges in parallel and hands each verified blob to
    the file writer. ``report`` is called after each range (progress);
    ``cancel`` stops the fetch (RestoreCancelled)."""

    def __init__(
        self,
        repo: Repository,
        writer: FilesWriter,
        *,
        workers: int,
        cancel: threading.Event,
        report: Callable[[], None],
    ):
        self.repo = repo
        self.writer = writer
        self.workers = workers
        self.cancel = cancel
        self.report = report

    def fetch(self, wanted: Wanted) -> None:
        reads = plan_reads(self.repo, wanted, self.repo.store.max_read_range)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="cairn-restore") as pool:
            for _ in pool.map(lambda r: self._fetch_range(wanted, *r), reads):
                self.report()
                if self.cancel.is_set():
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise RestoreCancelled("restore cancelled")

    def _fetch_range(self, wanted: Wanted, pack_id: str, group: list[Blob]) -> None:
        if self.cancel.is_set():
            return
        start = group[0][0]
        end = group[-1][0] + group[-1][1]
        try:
            data = memoryview(self.repo.store.get_range(pack_key(pack_id), start, end - start))
        except (StoreError, OSError) as exc:
            for _off, _len, blob_id, _e in group:
                self.writer.fail_chunk(wanted[blob_id], f"cannot read pack {pack_id[:16]}: {exc}")
            return
        for off, length, blob_id, entry in group:
            try:
                plain = self.repo.open_blob(
                    blob_id, entry, data[off - start : off - start + length]
                )
            except CorruptObject as exc:
                self.writer.fail_chunk(wanted[blob_id], str(exc))
                continue
            zero = plain[:1] == b"\0" and plain[-1:] == b"\0" and plain.count(0) == len(plain)
            for job, file_offset in wanted[blob_id]:
                self.writer.write_chunk(job, plain, file_offset, zero)
