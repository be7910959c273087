"""Content-defined chunking (agent/engine/chunker.py)."""

from __future__ import annotations

import os

from agent.engine.chunker import Chunker, ChunkerParams


def test_chunker_is_content_defined_and_seeded():
    data = os.urandom(2 * 1024 * 1024)
    params = ChunkerParams(min_size=16 * 1024, avg_size=64 * 1024, max_size=256 * 1024, seed=1)

    def cuts(buf, p=params):
        return [bytes(c) for c in Chunker(p).cut_buffer(buf)]

    a = cuts(data)
    assert b"".join(a) == data
    assert all(len(c) <= 256 * 1024 for c in a)
    shifted = cuts(b"inserted!" + data)
    assert len(set(a) & set(shifted)) >= len(a) - 2  # only the first chunk(s) differ
    other_seed = cuts(data, ChunkerParams(16 * 1024, 64 * 1024, 256 * 1024, seed=99))
    assert [len(c) for c in other_seed] != [len(c) for c in a]
