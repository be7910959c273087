"""The backup's file reader: consistent reads of a file, cut into chunks.

Like restic's file saver, with what a PC in use needs on top:

* Files that change while read are re-read up to ``read_retries`` times; if
  they keep changing they are stored flagged ``changed-during-read`` with a
  warning, never presented as a good copy.
* An attempt that may be replaced by a later one (a file changed in the last
  seconds, or a re-read) is held aside (:mod:`backup_hold`) and stored only
  if it is the copy the snapshot keeps.
* Files read from a read-only filesystem snapshot (``frozen``) cannot
  change: one read, no re-read.
* Small files (one chunk) are read whole by a worker (:meth:`read_small`),
  so their I/O waits overlap each other and the walk; large files are read
  in big blocks and cut by FastCDC on the walk thread (it releases the GIL).
* Sparse files: holes of at least one maximum chunk become zero chunks
  without being read or hashed.
"""

from __future__ import annotations

import errno
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import NamedTuple

from agent.engine.backup_hold import HeldAttempt
from agent.engine.backup_stats import Tally
from agent.engine.backup_upload import PackUploader
from agent.engine.chunker import Chunker, ChunkerParams
from agent.engine.source import NotARegularFile, open_source_file

#: re-reads of a file that changed while it was read, before storing it flagged
READ_RETRIES = 3
#: a file changed this recently when a read begins is probably being written:
#: that attempt is held aside until it is accepted (see backup_hold)
BUSY_NS = 10_000_000_000
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

_SEEK_HOLES = hasattr(os, "SEEK_DATA") and hasattr(os, "SEEK_HOLE")
_CHANGED_MESSAGE = "kept changing while read ({} attempts); stored flagged as changed during read"

SKIPPED = object()  # small file not stored (vanished, denied: warned)
GREW = object()  # small file grew past one chunk: read by the walk thread


class FileRead(NamedTuple):
    """A file's content as stored: chunk futures in order (each a blob id),
    the stat the content matches, and whether it kept changing."""

    futures: list[Future]
    stat: os.stat_result
    changed: bool


class FileReader:
    def __init__(
        self,
        uploader: PackUploader,
        tally: Tally,
        params: ChunkerParams,
        read_retries: int,
        check: Callable[[], None],
    ):
        self.uploader = uploader
        self.tally = tally
        self.chunker = Chunker(params)
        self.min_chunk = params.min_size
        self.max_chunk = params.max_size
        self.read_retries = read_retries
        self.check = check  # raises when the backup is cancelled or failed

    def _attempts(self, frozen: bool) -> int:
        return 1 if frozen else 1 + max(0, self.read_retries)

    def open(self, path: bytes, real: bytes):
        """The open source file, or None with a warning saying why not."""
        try:
            return open_source_file(real)
        except FileNotFoundError:
            self.tally.warn(path, "vanished", "vanished before it could be read")
        except NotARegularFile:
            self.tally.warn(path, "vanished", "replaced by a non-regular file during the backup")
        except OSError as exc:
            self.tally.warn(path, _kind(exc), f"cannot open: {exc.strerror or exc}")
        return None

    def read_file(self, path: bytes, real: bytes, frozen: bool = False) -> FileRead | None:
        """The file's content, or None if it could not be read (warned).

        An attempt that a later one may replace is held (not uploaded) when
        the file looks busy or is being re-read; the last attempt is stored
        directly, since it is kept either way (flagged if it changed too)."""
        attempts = self._attempts(frozen)
        for attempt in range(attempts):
            f = self.open(path, real)
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
                            held = HeldAttempt(self.uploader)
                        futures, nread = self.chunk_file(f, before, held)
                        after = os.fstat(f.fileno())
                except OSError as exc:
                    self.tally.warn(path, "read-error", f"read failed: {exc.strerror or exc}")
                    return None
                if _consistent(before, after, nread, read_start, frozen):
                    if held is not None:
                        held.commit(futures)
                        held = None
                    return FileRead(futures, before, False)
            finally:
                if held is not None:
                    held.discard(futures)
            if attempt + 1 < attempts:
                self.tally.stats.retries += 1
                _pause_past_a_tick(after)
        self.tally.warn(path, "changed-during-read", _CHANGED_MESSAGE.format(attempts))
        return FileRead(futures, after, True)

    def read_small(self, path: bytes, real: bytes, frozen: bool = False):
        """Worker: read and store a file expected to be one chunk, with the
        same consistency rules as read_file. Returns SKIPPED (warned), GREW
        (no longer small: the walk thread reads it), or
        (blob id or None, stat, changed)."""
        attempts = self._attempts(frozen)
        tally = self.tally
        for attempt in range(attempts):
            f = self.open(path, real)
            if f is None:
                return SKIPPED
            try:
                with f:
                    read_start = time.time_ns()
                    before = os.fstat(f.fileno())
                    if before.st_size > self.min_chunk:
                        return GREW
                    data = f.read(self.min_chunk + 1)
                    after = os.fstat(f.fileno())
            except OSError as exc:
                tally.warn(path, "read-error", f"read failed: {exc.strerror or exc}")
                return SKIPPED
            if len(data) > self.min_chunk:
                return GREW
            with tally.lock:
                tally.stats.bytes_read += len(data)
                tally.progress.bytes_read += len(data)
            consistent = _consistent(before, after, len(data), read_start, frozen)
            if consistent or attempt + 1 == attempts:
                blob_id = self.uploader.store_blob(data) if data else None
                if consistent:
                    return blob_id, before, False
                tally.warn(path, "changed-during-read", _CHANGED_MESSAGE.format(attempts))
                return blob_id, after, True
            with tally.lock:
                tally.stats.retries += 1
            _pause_past_a_tick(after)
        raise AssertionError("unreachable")

    def chunk_file(
        self, f, st: os.stat_result, held: HeldAttempt | None = None
    ) -> tuple[list[Future], int]:
        """Chunk futures for the file's content and the bytes it covered;
        with ``held``, the chunks are kept aside instead of stored."""
        submit = self.uploader.submit_chunk if held is None else held.submit
        futures: list[Future] = []
        size_hint = st.st_size
        if size_hint < self.min_chunk:
            # Small file: one read, one chunk (skips the chunker's set-up).
            data = f.read(self.min_chunk + 1)
            if len(data) <= self.min_chunk:
                self.tally.read(len(data))
                if data:
                    futures.append(submit(data))
                return futures, len(data)
            # It grew: chunk it properly from the start.
            f.seek(0)
        if _SEEK_HOLES and st.st_blocks * 512 < size_hint // 2:
            return self._chunk_sparse(f, size_hint, held)
        nread = self._chunk_stream(f, futures, submit)
        return futures, nread

    def _chunk_stream(self, stream, futures: list[Future], submit) -> int:
        nread = 0
        for view in self.chunker.cut_stream(stream):
            self.check()
            data = bytes(view)
            nread += len(data)
            self.tally.read(len(data))
            futures.append(submit(data))
            self.tally.report()
        return nread

    def _chunk_sparse(
        self, f, size: int, held: HeldAttempt | None = None
    ) -> tuple[list[Future], int]:
        """Sparse files (VM images, databases): holes of at least one maximum
        chunk become max-size zero chunks without reading or hashing them;
        data regions (with the rest of the holes) are chunked as usual. The
        content ids are the same kind as for any file, so restore needs no
        special case (it turns zero chunks back into holes)."""
        submit = self.uploader.submit_chunk if held is None else held.submit
        fd = f.fileno()
        max_size = self.max_chunk
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
                zero = (
                    self.uploader.zero_chunk(max_size) if held is None else submit(bytes(max_size))
                )
                futures.extend([zero] * zero_chunks)
                pos += zero_chunks * max_size
                covered += zero_chunks * max_size
                self.tally.report()
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


# --- when a read can be trusted ------------------------------------------------------
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


def _consistent(before, after, nread: int, read_start_ns: int, frozen: bool) -> bool:
    if frozen:
        # Nothing writes to a read-only snapshot: a file changed just before
        # it was taken is as final as one changed last year.
        return _same(before, after) and nread == after.st_size
    return _read_was_consistent(before, after, nread, read_start_ns)


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
