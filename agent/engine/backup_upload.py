"""The backup's pack uploader: blobs in, packs and index objects out.

Like restic's blob saver and its pack assembly, in one unit:

* ``submit_chunk`` hands a chunk to a pool of worker threads (one per core):
  keyed BLAKE3, dedup against the index and this run's claims, zstd, AES-GCM
  straight into a pack buffer. A semaphore bounds the chunks in flight, so
  reading cannot run ahead of storing.
* Full packs go to upload threads; the pack buffer pool is bounded, so slow
  storage holds back reading (backpressure).
* Index objects are written after the packs they name are stored, every
  ``INDEX_EVERY_PACKS`` packs from the upload thread and at the end: an
  interrupted backup loses at most that many packs of work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from agent.engine import compress
from agent.engine.backup_stats import Tally
from agent.engine.crypto import OVERHEAD
from agent.engine.index import INDEX_EVERY_PACKS
from agent.engine.pack import DATA, TREE, TREE_PACK_SIZE, FinishedPack, PackWriter, pack_key
from agent.engine.repository import Repository
from agent.engine.store import ObjectExists


class PackUploader:
    def __init__(self, repo: Repository, tally: Tally, workers: int):
        self.repo = repo
        self.tally = tally
        self.level = repo.compression_level
        self._claimed: set[bytes] = set()  # blob ids this run stores (under tally.lock)
        self._index_lock = threading.Lock()
        self._unindexed: dict[str, list] = {}  # uploaded packs not yet in an index object
        self._uploads: set[Future] = set()
        self._errors: list[BaseException] = []
        self._zero_chunks: dict[int, Future] = {}
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="cairn-chunk")
        self.upload_pool = ThreadPoolExecutor(2, thread_name_prefix="cairn-upload")
        self.inflight = threading.Semaphore(workers * 2 + 2)
        max_blob = repo.chunker_params.max_size
        self.data_packer = PackWriter(
            repo.cipher, repo.pack_size, max_blob, self._on_pack_full, buffers=3
        )
        self.tree_packer = PackWriter(
            repo.cipher, TREE_PACK_SIZE, max_blob, self._on_pack_full, buffers=2
        )

    # --- submitting ----------------------------------------------------------------
    def submit_chunk(self, data: bytes) -> Future:
        """A future of the chunk's blob id, stored unless known."""
        return self.submit_call(self.store_blob, data, DATA)

    def submit_call(self, fn: Callable, *args) -> Future:
        """Run ``fn`` on a worker, counted against the chunks in flight."""
        self.inflight.acquire()
        try:
            fut = self.pool.submit(fn, *args)
        except BaseException:
            self.inflight.release()
            raise
        fut.add_done_callback(lambda _f: self.inflight.release())
        return fut

    def zero_chunk(self, length: int) -> Future:
        """One future per length for the all-zero chunks of sparse holes."""
        fut = self._zero_chunks.get(length)
        if fut is None:
            fut = self._zero_chunks[length] = self.submit_chunk(bytes(length))
        return fut

    def raise_if_failed(self) -> None:
        if self._errors:
            raise self._errors[0]

    # --- storing (worker threads) ----------------------------------------------------
    def known(self, blob_id: bytes) -> bool:
        """Stored already, or claimed by this run. Caller holds tally.lock."""
        return blob_id in self._claimed or self.repo.index.reusable(blob_id)

    def claim(self, blob_id: bytes) -> bool:
        """Whether this caller is the one to store ``blob_id``."""
        with self.tally.lock:
            if self.known(blob_id):
                return False
            self._claimed.add(blob_id)
            return True

    def store_blob(self, data: bytes, kind=DATA) -> bytes:
        """Deduplicate, compress and pack one blob; its id either way."""
        blob_id = self.repo.blob_id(data)
        if not self.claim(blob_id):
            return blob_id
        method, payload = compress.thread_compressor(self.level).compress(data)
        self.pack_blob(blob_id, kind, method, len(data), payload)
        return blob_id

    def store_tree(self, data: bytes) -> bytes:
        return self.store_blob(data, TREE)

    def pack_blob(self, blob_id: bytes, kind, method, raw_len: int, payload) -> None:
        """Add a compressed blob this run has claimed to its pack."""
        packer = self.data_packer if kind == DATA else self.tree_packer
        packer.add(blob_id, kind, method, raw_len, payload)
        stats = self.tally.stats
        with self.tally.lock:
            if kind == DATA:
                stats.data_blobs_added += 1
            else:
                stats.tree_blobs_added += 1
            stats.bytes_added += len(payload) + OVERHEAD
            stats.bytes_added_raw += raw_len

    # --- uploading (upload threads) ----------------------------------------------------
    def _on_pack_full(self, pack: FinishedPack) -> None:
        fut = self.upload_pool.submit(self._upload, pack)
        with self._index_lock:
            self._uploads.add(fut)
        fut.add_done_callback(self._upload_done)

    def _upload(self, pack: FinishedPack) -> None:
        repo = self.repo
        try:
            try:
                repo.store.put(pack_key(pack.id), pack.data)
            except ObjectExists:
                pass  # same bytes, same name: already stored
            if repo.cache is not None and pack.entries and pack.entries[0].type == TREE:
                repo.cache.put("trees", pack.id, pack.data)
        finally:
            pack.release()
        with self._index_lock:
            self._unindexed[pack.id] = pack.entries
        repo.index.add_pack(pack.id, pack.entries)
        with self.tally.lock:
            self.tally.stats.packs_written += 1
            self.tally.progress.bytes_added = self.tally.stats.bytes_added
        # From the upload thread, so a long file cannot delay it: an
        # interrupted backup loses at most INDEX_EVERY_PACKS packs of work.
        self._write_index(final=False)

    def _upload_done(self, fut: Future) -> None:
        with self._index_lock:
            self._uploads.discard(fut)
        exc = fut.exception()
        if exc is not None:
            self._errors.append(exc)

    def _write_index(self, final: bool) -> None:
        with self._index_lock:
            if not self._unindexed or (not final and len(self._unindexed) < INDEX_EVERY_PACKS):
                return
            packs, self._unindexed = self._unindexed, {}
        self.repo.save_index(packs)

    # --- the end ---------------------------------------------------------------------
    def drain(self, abort: bool) -> None:
        """Finish in-flight work, flush packs, wait for uploads, write the index.
        On abort (error or cancel) whatever was uploaded is still indexed, so
        the next backup reuses it."""
        self.pool.shutdown(wait=True, cancel_futures=abort)
        try:
            self.data_packer.flush()
            self.tree_packer.flush()
        except Exception:
            if not abort:
                raise
        for f in list(self._uploads):
            f.exception()  # waits
        if self._errors and not abort:
            raise self._errors[0]
        self._write_index(final=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.upload_pool.shutdown(wait=True)
