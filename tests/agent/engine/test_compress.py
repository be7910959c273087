"""Compression (agent/engine/compress.py)."""

from __future__ import annotations

import os

import pytest

from agent.engine import compress
from agent.engine.errors import (
    CorruptObject,
)


def test_compression_skips_incompressible():
    comp = compress.Compressor(3)
    text = b"the quick brown fox " * 20000
    method, payload = comp.compress(text)
    assert method == compress.ZSTD and len(payload) < len(text) // 10
    assert compress.decompress(method, payload, len(text)) == text
    noise = os.urandom(1024 * 1024)
    method, payload = comp.compress(noise)
    assert method == compress.NONE and payload is noise
    with pytest.raises(CorruptObject):
        compress.decompress(compress.ZSTD, b"not zstd", 10)
