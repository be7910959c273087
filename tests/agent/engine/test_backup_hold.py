"""Held read attempts (agent/engine/backup_hold.py): a rejected attempt
uploads nothing; an accepted one is stored, from memory or its spill file."""

from __future__ import annotations

import os

from agent.engine import backup_hold
from agent.engine import paths as pathmap
from agent.engine.backup_hold import HeldAttempt
from agent.engine.backup_stats import Tally
from agent.engine.backup_upload import PackUploader


def held(repo):
    up = PackUploader(repo, Tally(pathmap.current(), None), 2)
    return up, HeldAttempt(up)


def test_a_discarded_attempt_uploads_nothing(repo):
    up, attempt = held(repo)
    futures = [attempt.submit(os.urandom(20_000)) for _ in range(5)]
    attempt.discard(futures)
    up.drain(abort=False)
    up.close()
    stats = up.tally.stats
    assert stats.data_blobs_added == 0 and stats.packs_written == 0
    assert stats.bytes_discarded >= 5 * 20_000  # random data: stored as is
    assert len(repo.index) == 0


def test_a_committed_attempt_is_stored_and_ids_match_a_direct_store(repo, reopen):
    up, attempt = held(repo)
    chunks = [os.urandom(20_000) for _ in range(5)]
    futures = [attempt.submit(c) for c in chunks]
    attempt.commit(futures)
    up.drain(abort=False)
    up.close()
    assert up.tally.stats.data_blobs_added == 5 and up.tally.stats.bytes_discarded == 0
    fresh = reopen()
    for chunk, fut in zip(chunks, futures, strict=True):
        assert fut.result() == fresh.blob_id(chunk)
        assert fresh.read_blob(fut.result()) == chunk


def test_past_the_memory_bound_chunks_spill_to_a_file_and_read_back(repo, reopen, monkeypatch):
    monkeypatch.setattr(backup_hold, "HOLD_IN_MEMORY", 30_000)
    up, attempt = held(repo)
    chunks = [os.urandom(20_000) for _ in range(4)]
    futures = [attempt.submit(c) for c in chunks]
    for f in futures:
        f.result()
    assert attempt.spool is not None  # 3 of the 4 chunks went to the file
    assert sum(1 for e in attempt.entries.values() if e[2] is None) == 3
    attempt.commit(futures)
    up.drain(abort=False)
    up.close()
    fresh = reopen()
    assert [fresh.read_blob(f.result()) for f in futures] == chunks


def test_past_the_hold_limit_the_rest_is_stored_as_read(repo, monkeypatch):
    monkeypatch.setattr(backup_hold, "HOLD_IN_MEMORY", 30_000)
    monkeypatch.setattr(backup_hold, "HOLD_LIMIT", 50_000)
    up, attempt = held(repo)
    futures = [attempt.submit(os.urandom(20_000)) for _ in range(4)]
    for f in futures:
        f.result()
    assert attempt.overflow
    attempt.discard(futures)  # replaced after all: what overflowed was stored already
    up.drain(abort=False)
    up.close()
    assert up.tally.stats.data_blobs_added == 2
