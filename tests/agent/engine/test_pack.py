"""Pack writing and headers (agent/engine/pack.py)."""

from __future__ import annotations

import os

import pytest

from agent.engine import compress
from agent.engine.crypto import (
    Cipher,
)
from agent.engine.errors import (
    CorruptObject,
)
from agent.engine.pack import DATA, PackWriter, read_pack_header


def test_pack_writer_and_header():
    c = Cipher(os.urandom(32))
    done = []
    w = PackWriter(c, 100_000, 64 * 1024, done.append, buffers=2)
    blobs = {os.urandom(32): os.urandom(n) for n in (10, 30_000, 60_000, 50_000, 1)}
    for bid, data in blobs.items():
        w.add(bid, DATA, compress.NONE, len(data), data)
    w.flush()
    assert len(done) == 2
    seen = {}
    for pack in done:
        data = bytes(pack.data)
        entries = read_pack_header(c, data)
        assert entries == pack.entries
        for e in entries:
            from agent.engine.pack import blob_aad

            seen[e.id] = c.open(data[e.offset : e.offset + e.length], blob_aad(0, 0, e.id))
        pack.release()
    assert seen == blobs
    bad = bytearray(bytes(done[0].data))
    bad[-10] ^= 0xFF
    with pytest.raises(CorruptObject):
        read_pack_header(c, bytes(bad))


def test_pack_writer_blob_larger_than_a_buffer_gets_its_own_pack():
    c = Cipher(os.urandom(32))
    done = []
    w = PackWriter(c, 10_000, 1_000, done.append, buffers=1)
    small, big = os.urandom(500), os.urandom(50_000)
    w.add(b"s" * 32, DATA, compress.NONE, 500, small)
    w.add(b"b" * 32, DATA, compress.NONE, 50_000, big)
    w.flush()
    assert len(done) == 2
    for pack in done:
        entries = read_pack_header(c, bytes(pack.data))
        assert entries == pack.entries and len(entries) == 1
        pack.release()
