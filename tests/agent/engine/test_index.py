"""Index objects (agent/engine/index.py)."""

from __future__ import annotations

import os

import pytest

from agent.engine.errors import (
    CorruptObject,
)
from agent.engine.index import decode_index, encode_index


def test_index_roundtrip():
    from agent.engine.pack import BlobEntry

    packs = {
        os.urandom(32).hex(): [BlobEntry(os.urandom(32), 0, 1, 8 + i, 100, 200) for i in range(3)],
        os.urandom(32).hex(): [BlobEntry(os.urandom(32), 1, 0, 8, 5, 5)],
    }
    assert decode_index(encode_index(packs)) == packs
    with pytest.raises(CorruptObject):
        decode_index(b"garbage")
