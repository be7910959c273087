"""The index: blob id -> (pack, offset, length, ...).

In the repository the index is a set of ``index/<id>`` objects, each listing
the blobs of some packs (docs/format.md, "Index"). A backup writes one every
``INDEX_EVERY_PACKS`` packs and one at the end, always *after* the packs it
names are stored and *before* the snapshot that needs them, so a crash at any
moment leaves either unindexed packs (harmless, reclaimable) or a complete
state. In memory all index objects merge into one :class:`MasterIndex`.

Index object plaintext (zstd-compressed, then sealed with AAD
``cairn-index-v1``)::

    "CIX1", u32 pack count, pack ids (32 bytes each),
    u32 entry count, entries <32s I B B I I I>:
        blob id, pack number, type, compression, offset, length, raw length
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Iterator

import zstandard

from agent.engine.errors import CorruptObject, UnsupportedVersion
from agent.engine.pack import BlobEntry

INDEX_MAGIC = b"CIX1"
INDEX_AAD = b"cairn-index-v1"
ENTRY = struct.Struct("<32sIBBIII")
#: write an index object after this many packs (~1 GiB of data packs), so an
#: interrupted initial backup loses at most that much work
INDEX_EVERY_PACKS = 64


class IndexEntry(tuple):
    """(pack_id, type, compression, offset, length, raw_length)"""

    __slots__ = ()

    pack_id = property(lambda self: self[0])
    type = property(lambda self: self[1])
    compression = property(lambda self: self[2])
    offset = property(lambda self: self[3])
    length = property(lambda self: self[4])
    raw_length = property(lambda self: self[5])


class MasterIndex:
    """All known blobs. Thread-safe for concurrent add/lookup."""

    def __init__(self):
        # Values are compact tuples holding a pack *number*, not the 64-char id.
        self._blobs: dict[bytes, tuple[int, int, int, int, int, int]] = {}
        self._pack_ids: list[str] = []
        self._pack_no: dict[str, int] = {}
        self._lock = threading.Lock()
        #: pack numbers a prune has condemned (docs/format.md, "Prune"):
        #: still readable, but a backup must not deduplicate against them
        self._condemned: set[int] = set()
        #: other locations of blobs stored in several packs (concurrent
        #: backups of the same data): blob id -> pack numbers not resolved to
        self._copies: dict[bytes, list[int]] = {}
        #: pack numbers an index object named (resolved to or not)
        self._named: set[int] = set()

    def __len__(self) -> int:
        return len(self._blobs)

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._blobs

    def condemn(self, pack_ids: Iterable[str]) -> None:
        """Call before adding packs: a blob's location is resolved when added."""
        with self._lock:
            self._condemned.update(self._pack_number(p) for p in pack_ids)

    def reusable(self, blob_id: bytes) -> bool:
        """Whether a backup may refer to this blob instead of storing it:
        it is indexed and not in a pack condemned by a prune marker."""
        v = self._blobs.get(blob_id)
        return v is not None and v[0] not in self._condemned

    def _pack_number(self, pack_id: str) -> int:
        no = self._pack_no.get(pack_id)
        if no is None:
            no = self._pack_no[pack_id] = len(self._pack_ids)
            self._pack_ids.append(pack_id)
        return no

    def add_pack(self, pack_id: str, entries: Iterable[BlobEntry]) -> None:
        with self._lock:
            no = self._pack_number(pack_id)
            blobs = self._blobs
            live = no not in self._condemned
            self._named.add(no)
            for e in entries:
                # First location wins: duplicates across packs are harmless.
                # A copy outside condemned packs wins over one inside them.
                old = blobs.get(e.id)
                if old is None or (live and old[0] in self._condemned):
                    blobs[e.id] = (no, e.type, e.compression, e.offset, e.length, e.raw_length)
                    if old is not None and old[0] != no:
                        self._copies.setdefault(e.id, []).append(old[0])
                elif old[0] != no:
                    self._copies.setdefault(e.id, []).append(no)

    def get(self, blob_id: bytes) -> IndexEntry | None:
        v = self._blobs.get(blob_id)
        if v is None:
            return None
        return IndexEntry((self._pack_ids[v[0]], *v[1:]))

    def raw_length(self, blob_id: bytes) -> int | None:
        v = self._blobs.get(blob_id)
        return None if v is None else v[5]

    def pack_ids(self) -> set[str]:
        with self._lock:
            used = {v[0] for v in self._blobs.values()}
            return {self._pack_ids[n] for n in used}

    def named_pack_ids(self) -> set[str]:
        """Every pack an index object names, including those none of whose
        blobs the index resolves to (all copies of blobs stored elsewhere)."""
        with self._lock:
            return {self._pack_ids[n] for n in self._named}

    def copies(self) -> dict[str, list[tuple[str, int]]]:
        """Packs holding copies the index does not use: pack -> for each such
        blob, (the pack the index uses, how many packs store the blob)."""
        with self._lock:
            out: dict[str, list[tuple[str, int]]] = {}
            for blob_id, others in self._copies.items():
                home = self._pack_ids[self._blobs[blob_id][0]]
                spread = 1 + len(set(others) - {self._blobs[blob_id][0]})
                for n in set(others):
                    out.setdefault(self._pack_ids[n], []).append((home, spread))
            return out

    def items(self) -> Iterator[tuple[bytes, IndexEntry]]:
        for blob_id, v in list(self._blobs.items()):
            yield blob_id, IndexEntry((self._pack_ids[v[0]], *v[1:]))

    def merge(self, packs: dict[str, list[BlobEntry]]) -> None:
        for pack_id, entries in packs.items():
            self.add_pack(pack_id, entries)


def encode_index(packs: dict[str, list[BlobEntry]]) -> bytes:
    """Plaintext of an index object naming ``packs`` (compressed)."""
    pack_ids = list(packs)
    out = bytearray(INDEX_MAGIC)
    out += struct.pack("<I", len(pack_ids))
    for pid in pack_ids:
        out += bytes.fromhex(pid)
    count = sum(len(v) for v in packs.values())
    out += struct.pack("<I", count)
    for no, pid in enumerate(pack_ids):
        for e in packs[pid]:
            out += ENTRY.pack(e.id, no, e.type, e.compression, e.offset, e.length, e.raw_length)
    return zstandard.ZstdCompressor(level=3).compress(bytes(out))


def decode_index(data: bytes, *, what: str = "index") -> dict[str, list[BlobEntry]]:
    try:
        plain = zstandard.ZstdDecompressor().decompress(data)
    except zstandard.ZstdError as exc:
        raise CorruptObject(f"{what} does not decompress: {exc}") from None
    if plain[:3] == INDEX_MAGIC[:3] and plain[:4] != INDEX_MAGIC:
        raise UnsupportedVersion(f"{what} has unknown index format {plain[:4]!r}")
    if plain[:4] != INDEX_MAGIC:
        raise CorruptObject(f"{what} has no index magic")
    try:
        (n_packs,) = struct.unpack_from("<I", plain, 4)
        pos = 8
        pack_ids = [plain[pos + 32 * i : pos + 32 * (i + 1)].hex() for i in range(n_packs)]
        pos += 32 * n_packs
        (count,) = struct.unpack_from("<I", plain, pos)
        pos += 4
        if len(plain) != pos + count * ENTRY.size:
            raise CorruptObject(f"{what} has the wrong length")
        packs: dict[str, list[BlobEntry]] = {pid: [] for pid in pack_ids}
        for blob_id, no, t, c, off, length, raw in ENTRY.iter_unpack(plain[pos:]):
            packs[pack_ids[no]].append(BlobEntry(blob_id, t, c, off, length, raw))
    except (struct.error, IndexError) as exc:
        raise CorruptObject(f"{what} does not parse: {exc}") from None
    return packs
