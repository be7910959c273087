"""zstd compression per blob, skipped for data that does not compress.

Whether a chunk compresses is decided cheaply from a sample: compressing
8 pieces of 8 KiB spread over the chunk at level 1 costs ~0.2 ms; if that
sample shrinks by less than ``SKIP_RATIO`` the chunk is stored raw (zip-based Office files, media and
encrypted data never pay for a full compression). A chunk that passes the
sample is compressed whole and still stored raw if that did not pay.

``zstandard`` compressors must not be shared between threads (sharing one
crashed the process in our measurements): each thread gets its own through
:func:`thread_compressor`.
"""

from __future__ import annotations

import threading

import zstandard

from agent.engine.errors import CorruptObject

#: compression method byte stored with every blob (index, pack header, AAD)
NONE = 0
ZSTD = 1

DEFAULT_LEVEL = 3
SAMPLE_PIECES = 8
SAMPLE_PIECE = 8 * 1024
#: below this the sample is not worth it: compress the whole chunk directly
SAMPLE_MIN_CHUNK = 256 * 1024
#: store raw unless compression saves at least 1/32 (~3 %) of the bytes
SKIP_RATIO = 31 / 32

_local = threading.local()


class Compressor:
    def __init__(self, level: int = DEFAULT_LEVEL):
        self.level = level
        self._cctx = zstandard.ZstdCompressor(level=level, write_content_size=True)
        self._probe = zstandard.ZstdCompressor(level=1)

    def compress(self, data) -> tuple[int, bytes | memoryview]:
        """(method, payload) for ``data``; payload is ``data`` itself when raw."""
        n = len(data)
        if n < 64:
            return NONE, data
        if n >= SAMPLE_MIN_CHUNK:
            # Probe several spread-out pieces: one sample from the middle
            # missed compressible parts of mixed chunks (mailboxes with
            # attachments) and cost ~4 % of repository size on the benchmark.
            view = memoryview(data)
            step = (n - SAMPLE_PIECE) // (SAMPLE_PIECES - 1)
            sample = b"".join(
                view[i * step : i * step + SAMPLE_PIECE] for i in range(SAMPLE_PIECES)
            )
            if len(self._probe.compress(sample)) > len(sample) * SKIP_RATIO:
                return NONE, data
        out = self._cctx.compress(data)
        if len(out) > n * SKIP_RATIO:
            return NONE, data
        return ZSTD, out


def thread_compressor(level: int = DEFAULT_LEVEL) -> Compressor:
    comp = getattr(_local, "compressor", None)
    if comp is None or comp.level != level:
        comp = _local.compressor = Compressor(level)
    return comp


def decompress(method: int, payload, raw_length: int) -> bytes:
    if method == NONE:
        return bytes(payload)
    if method != ZSTD:
        raise CorruptObject(f"unknown compression method {method}")
    dctx = getattr(_local, "decompressor", None)
    if dctx is None:
        dctx = _local.decompressor = zstandard.ZstdDecompressor()
    try:
        out = dctx.decompress(payload, max_output_size=raw_length)
    except zstandard.ZstdError as exc:
        raise CorruptObject(f"compressed data does not decode: {exc}") from None
    if len(out) != raw_length:
        raise CorruptObject(f"decompressed to {len(out)} bytes, expected {raw_length}")
    return out
