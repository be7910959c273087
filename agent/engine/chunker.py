"""Content-defined chunking with FastCDC (pyfastcdc, native, releases the GIL).

Chunk boundaries depend on content only, so an insertion early in a file moves
one or two boundaries and the rest of the file deduplicates. The gear table
is seeded with a per-repository secret (``config.chunker.seed``): without it,
the sizes of stored chunks would let the storage operator test for known
files even though the chunks are encrypted.

Sizes (docs/format.md, "Chunking", measured in docs/performance.md): minimum
256 KiB, average target 1 MiB, maximum 4 MiB. Smaller chunks dedup slightly
better on edited documents and mailboxes but multiply index entries, blobs
and per-chunk overhead; larger chunks dedup worse. Files smaller than the
minimum are one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pyfastcdc import FastCDC

MIN_SIZE = 256 * 1024
AVG_SIZE = 1024 * 1024
MAX_SIZE = 4 * 1024 * 1024


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
            from agent.engine.errors import UnsupportedVersion

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
