"""Held read attempts: a busy file costs one upload, not one per attempt.

A read attempt that a later one may replace (a file changed in the last
seconds, or a re-read) has its new chunks compressed by the workers but kept
aside (the first HOLD_IN_MEMORY bytes in memory, the rest in an unlinked
temporary file) until the attempt is accepted.

Without it every rejected attempt of a busy file was uploaded and stayed
unreferenced until the next prune: a 64 MiB mailbox rewritten 8 times a
second cost 4 uploads per backup. Blob ids are computed as usual, so the
file's node is the same; only ``commit`` claims and packs the blobs.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from concurrent.futures import Future

from agent.engine import compress
from agent.engine.backup_upload import PackUploader
from agent.engine.errors import EngineError
from agent.engine.pack import DATA

#: a held attempt's compressed chunks stay in memory up to this, then spill to
#: an unlinked temporary file (deleted by the OS even if the agent dies)
HOLD_IN_MEMORY = 16 * 1024 * 1024
#: beyond this (or when the temporary file's disk is full) the rest of the
#: attempt is stored as it is read, as before: a huge busy file may then cost
#: part of a copy more, but never fails the backup for want of local room
HOLD_LIMIT = 4 * 1024 * 1024 * 1024


class HeldAttempt:
    def __init__(self, uploader: PackUploader):
        self.uploader = uploader
        self.spool = None  # the temporary file, opened past HOLD_IN_MEMORY
        self.lock = threading.Lock()
        #: blob id -> (method, raw length, payload in memory or None, file offset, size)
        self.entries: dict[bytes, tuple] = {}
        self.size = 0  # bytes held
        self.overflow = False  # no more room to hold: the rest is stored as read

    def submit(self, data: bytes) -> Future:
        return self.uploader.submit_call(self._hold, data)

    def _hold(self, data: bytes) -> bytes:
        """Worker: the chunk's id; its compressed bytes spooled if new."""
        up = self.uploader
        blob_id = up.repo.blob_id(data)
        with up.tally.lock:
            if up.known(blob_id):
                return blob_id
        with self.lock:
            if blob_id in self.entries:
                return blob_id
        method, payload = compress.thread_compressor(up.level).compress(data)
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
        if self.uploader.claim(blob_id):
            self.uploader.pack_blob(blob_id, DATA, method, raw_len, payload)

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
        for fut in futures:
            fut.exception()  # waits; errors surface where the futures are read
        with self.uploader.tally.lock:
            self.uploader.tally.stats.bytes_discarded += self.size
        self._close()
