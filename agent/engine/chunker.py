"""Content-defined chunking with FastCDC (pyfastcdc, native, releases the GIL).

Chunk boundaries depend on content only, so an insertion early in a file moves
one or two boundaries and the rest of the file deduplicates. The gear table
is seeded with a per-repository secret (``config.chunker.seed``): without it,
the sizes of stored chunks would let the storage operator test for known
files even though the chunks are encrypted.

Sizes (docs/format.md, "Chunking"): minimum 128 KiB, ``avg_size`` 512 KiB,
maximum 2 MiB (pyfastcdc's effective mean is ``avg_size + min_size``, ~640
KiB). Measured on the benchmark's seeded 600 MiB office-PC data set
(tests/bench/dataset.py) plus its "day of changes":

    min/avg/max          initial   after a day of changes   blobs
    64K/256K/1M          392.7 MiB          28.2 MiB         9,722
    128K/512K/2M         399.7 MiB          33.2 MiB         9,102   <- chosen
    256K/1M/4M           402.5 MiB          46.8 MiB         8,798
    512K/1M/8M (restic)  402.7 MiB          50.2 MiB         8,759

Smaller chunks deduplicate edited mailboxes and documents better, but every
chunk is an index entry held in memory (~150 bytes) and a content id in its
file's tree: 128K/512K/2M keeps most of the gain at half the index size of
64K/256K/1M. Files smaller than the minimum are one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pyfastcdc import FastCDC

from agent.engine.errors import UnsupportedVersion

MIN_SIZE = 128 * 1024
AVG_SIZE = 512 * 1024
MAX_SIZE = 2 * 1024 * 1024


@dataclass(frozen=True)
class ChunkerParams:
    min_size: int = MIN_SIZE
    avg_size: int = AVG_SIZE
    max_size: int = MAX_SIZE
    seed: int = 0

    def to_dict(self) -> dict:
        return {
            "algorithm": "fastcdc2020",
            "min_size": self.min_size,
            "avg_size": self.avg_size,
            "max_size": self.max_size,
            "normalization": 1,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, doc: dict) -> ChunkerParams:
        if doc.get("algorithm") != "fastcdc2020" or doc.get("normalization", 1) != 1:
            raise UnsupportedVersion(f"unknown chunker {doc!r}")
        return cls(doc["min_size"], doc["avg_size"], doc["max_size"], doc["seed"])


class Chunker:
    """Cuts a stream into chunks. One per reading thread (pyfastcdc objects
    are not safe to share while cutting)."""

    def __init__(self, params: ChunkerParams):
        self.params = params
        # pyfastcdc XORs the seed (and seed << 1) into its 64-bit gear tables,
        # so seeds are kept below 2**63.
        self._cdc = FastCDC(
            avg_size=params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=1,
            seed=params.seed & 0x7FFFFFFFFFFFFFFF,
        )

    def cut_stream(self, stream) -> Iterator[memoryview]:
        """Yield chunk views of ``stream`` (an object with ``readinto``). Each
        view is valid only until the next one is produced: copy it to keep it."""
        for chunk in self._cdc.cut_stream(stream):
            yield chunk.data

    def cut_buffer(self, buf) -> Iterator[memoryview]:
        for chunk in self._cdc.cut_buf(buf):
            yield chunk.data
