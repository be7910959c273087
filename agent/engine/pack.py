"""Packs: many encrypted blobs in one object, so that S3 sees few, large PUTs.

Layout (docs/format.md, "Packs")::

    "CAIRNPK1"                      8 bytes, magic + pack format version
    blob 1 .. blob n                each: nonce(12) || AES-GCM ciphertext || tag(16)
    sealed header                   nonce || AES-GCM(header plaintext) || tag
    header length                   u32 little-endian, length of the sealed header

Header plaintext: ``"CPH1"``, u32 count, then ``count`` records
``<B B 32s I I I>`` = type, compression, blob id, offset, length, raw length.
The header makes a pack self-describing: an index can be rebuilt from packs.

A pack is named by the unkeyed BLAKE3 of its bytes (``data/<id[:2]>/<id>``):
the name is derived from ciphertext only, so it reveals nothing, and anyone
can check a pack's integrity without keys.

Writers reserve space in a reused pack buffer and encrypt straight into it
(``encrypt_into``), so no per-chunk ciphertext is allocated; the buffer pool
is bounded, which gives the pipeline its backpressure on upload.
"""

from __future__ import annotations

import queue
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

import blake3

from agent.engine.crypto import OVERHEAD, Cipher
from agent.engine.errors import CorruptObject, UnsupportedVersion

PACK_MAGIC = b"CAIRNPK1"
HEADER_MAGIC = b"CPH1"
HEADER_RECORD = struct.Struct("<BB32sIII")
TRAILER = struct.Struct("<I")
HEADER_AAD = b"cairn-pack-header-v1"

DATA = 0
TREE = 1
BLOB_TYPES = {DATA: "data", TREE: "tree"}

#: Target pack size. 16 MiB: on S3 one PUT per 16 MiB keeps request cost and
#: object count low (a 100 GiB device is ~6,400 objects) while a restore of
#: one small file still fetches only the byte range of its blobs. Measured on
#: the benchmark data set (600 MiB, local store, fsync per pack): 4 MiB packs
#: were the slowest (110 MiB/s, one fsync per 4 MiB), 8-32 MiB within noise
#: of each other (155-200 MiB/s); peak RSS grows with the pack buffers
#: (103 / 117 / 135 / 184 MiB for 4 / 8 / 16 / 32 MiB; restic: 144 MiB).
DATA_PACK_SIZE = 16 * 1024 * 1024
#: Trees are small; a smaller target keeps restore/ls reads of tree packs short.
TREE_PACK_SIZE = 4 * 1024 * 1024
#: a pack closes after this many blobs, which bounds its header
MAX_BLOBS_PER_PACK = 16384


def pack_key(pack_id: str) -> str:
    return f"data/{pack_id[:2]}/{pack_id}"


def blob_aad(blob_type: int, compression: int, blob_id: bytes) -> bytes:
    # The AAD binds a blob's ciphertext to its id, type and compression: an
    # index that points a blob id at another blob fails authentication.
    return b"cairn-blob-v1" + bytes((blob_type, compression)) + blob_id


@dataclass(frozen=True, slots=True)
class BlobEntry:
    id: bytes
    type: int
    compression: int
    offset: int
    length: int  # sealed length in the pack
    raw_length: int  # plaintext length


@dataclass
class FinishedPack:
    id: str
    data: memoryview
    entries: list[BlobEntry]
    release: Callable[[], None]  # give the buffer back once uploaded


class BufferPool:
    """A bounded set of reusable pack buffers: when all are busy uploading,
    writers wait, which holds back reading and encryption."""

    def __init__(self, count: int, capacity: int):
        self.capacity = capacity
        self._free: queue.Queue[bytearray] = queue.Queue()
        self._allocated = 0
        self._limit = count
        self._lock = threading.Lock()

    def acquire(self) -> bytearray:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._allocated < self._limit:
                self._allocated += 1
                return bytearray(self.capacity)
        return self._free.get()

    def release(self, buf: bytearray) -> None:
        self._free.put(buf)


class _OpenPack:
    __slots__ = ("buf", "view", "used", "writers", "closed", "entries")

    def __init__(self, buf: bytearray):
        self.buf = buf
        self.view = memoryview(buf)
        self.view[: len(PACK_MAGIC)] = PACK_MAGIC
        self.used = len(PACK_MAGIC)
        self.writers = 0
        self.closed = False
        self.entries: list[BlobEntry] = []


def header_capacity(blobs: int) -> int:
    return len(HEADER_MAGIC) + 4 + blobs * HEADER_RECORD.size + OVERHEAD + TRAILER.size


class PackWriter:
    """Thread-safe: several workers add blobs at once. Full packs are handed
    to ``on_full`` (from whichever thread completed them)."""

    def __init__(
        self,
        cipher: Cipher,
        target_size: int,
        max_blob_size: int,
        on_full: Callable[[FinishedPack], None],
        buffers: int = 3,
    ):
        self.cipher = cipher
        self.target_size = target_size
        self.on_full = on_full
        self.max_blob_size = max_blob_size
        capacity = target_size + max_blob_size + OVERHEAD + header_capacity(MAX_BLOBS_PER_PACK)
        self.pool = BufferPool(buffers, capacity)
        self._lock = threading.Lock()
        self._current: _OpenPack | None = None

    def add(self, blob_id: bytes, blob_type: int, compression: int, raw_length: int, payload):
        """Encrypt ``payload`` into the current pack."""
        n = len(payload) + OVERHEAD
        if n > self.max_blob_size + OVERHEAD:
            # Larger than a pack buffer has room for (a tree of a huge
            # directory): a pack of its own.
            self._single(blob_id, blob_type, compression, raw_length, payload)
            return
        while True:
            with self._lock:
                pack = self._current
                if pack is not None:
                    offset = pack.used
                    pack.used += n
                    pack.writers += 1
                    if (
                        pack.used >= self.target_size
                        or len(pack.entries) + pack.writers >= MAX_BLOBS_PER_PACK
                    ):
                        pack.closed = True
                        self._current = None
                    break
            buf = self.pool.acquire()  # may wait for an upload: outside the lock
            with self._lock:
                if self._current is None:
                    self._current = _OpenPack(buf)
                else:
                    self.pool.release(buf)
        entry = None
        try:
            self.cipher.seal_into(
                payload,
                blob_aad(blob_type, compression, blob_id),
                pack.view[offset : offset + n],
            )
            entry = BlobEntry(blob_id, blob_type, compression, offset, n, raw_length)
        finally:
            with self._lock:
                pack.writers -= 1
                # A failed encryption leaves a gap: harmless, nothing points at it.
                if entry is not None:
                    pack.entries.append(entry)
                ready = pack.closed and pack.writers == 0
        if ready:
            self._finish(pack)

    def flush(self) -> None:
        """Close and hand over the current pack (call when no add() is running)."""
        with self._lock:
            pack = self._current
            self._current = None
            if pack is None:
                return
            pack.closed = True
            ready = pack.writers == 0
        if ready:
            if pack.entries:
                self._finish(pack)
            else:
                self.pool.release(pack.buf)

    def _single(self, blob_id, blob_type, compression, raw_length, payload) -> None:
        n = len(payload) + OVERHEAD
        pack = _OpenPack(bytearray(len(PACK_MAGIC) + n + header_capacity(1)))
        offset = pack.used
        self.cipher.seal_into(
            payload, blob_aad(blob_type, compression, blob_id), pack.view[offset : offset + n]
        )
        pack.used += n
        pack.entries.append(BlobEntry(blob_id, blob_type, compression, offset, n, raw_length))
        self._finish(pack, pooled=False)

    def _finish(self, pack: _OpenPack, pooled: bool = True) -> None:
        entries = sorted(pack.entries, key=lambda e: e.offset)
        header = bytearray(HEADER_MAGIC + struct.pack("<I", len(entries)))
        for e in entries:
            header += HEADER_RECORD.pack(
                e.type, e.compression, e.id, e.offset, e.length, e.raw_length
            )
        start = pack.used
        sealed_len = len(header) + OVERHEAD
        self.cipher.seal_into(header, HEADER_AAD, pack.view[start : start + sealed_len])
        end = start + sealed_len
        pack.view[end : end + TRAILER.size] = TRAILER.pack(sealed_len)
        end += TRAILER.size
        data = pack.view[:end]
        pack_id = blake3.blake3(data, max_threads=1).hexdigest()
        buf = pack.buf
        release = (lambda: self.pool.release(buf)) if pooled else (lambda: None)
        self.on_full(FinishedPack(pack_id, data, entries, release))


def read_pack_header(cipher: Cipher, data, *, what: str = "pack") -> list[BlobEntry]:
    """The blob entries a pack's own header lists (authenticated)."""
    if len(data) < len(PACK_MAGIC) + TRAILER.size + OVERHEAD:
        raise CorruptObject(f"{what} is truncated ({len(data)} bytes)")
    magic = bytes(data[: len(PACK_MAGIC)])
    if magic != PACK_MAGIC:
        if magic[:7] == PACK_MAGIC[:7]:
            raise UnsupportedVersion(f"{what} has unknown pack format version {magic[7:]!r}")
        raise CorruptObject(f"{what} does not start with the pack magic")
    (sealed_len,) = TRAILER.unpack(data[-TRAILER.size :])
    start = len(data) - TRAILER.size - sealed_len
    if sealed_len < OVERHEAD or start < len(PACK_MAGIC):
        raise CorruptObject(f"{what} has an invalid header length")
    header = cipher.open(data[start : start + sealed_len], HEADER_AAD, what=f"{what} header")
    if header[:4] != HEADER_MAGIC:
        raise CorruptObject(f"{what} header has an unknown format")
    (count,) = struct.unpack_from("<I", header, 4)
    if len(header) != 8 + count * HEADER_RECORD.size:
        raise CorruptObject(f"{what} header has the wrong length")
    return [
        BlobEntry(blob_id, t, c, off, length, raw)
        for t, c, blob_id, off, length, raw in HEADER_RECORD.iter_unpack(header[8:])
    ]
