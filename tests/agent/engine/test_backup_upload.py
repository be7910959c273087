"""The backup's pack uploader (agent/engine/backup_upload.py): blobs are
deduplicated, packed, uploaded and indexed; an upload failure fails the run."""

from __future__ import annotations

import os

import pytest

from agent.engine import paths as pathmap
from agent.engine.backup_stats import Tally
from agent.engine.backup_upload import PackUploader
from agent.engine.pack import TREE
from agent.engine.store import LocalStore, StoreError


def uploader(repo, workers: int = 2) -> PackUploader:
    return PackUploader(repo, Tally(pathmap.current(), None), workers)


def test_blobs_are_stored_once_packed_and_indexed(repo, reopen):
    up = uploader(repo)
    chunks = [os.urandom(50_000) for _ in range(12)]  # ~600 KB: several 256 KiB packs
    futures = [up.submit_chunk(c) for c in chunks + chunks]  # every chunk twice
    tree_id = up.store_tree(b'{"nodes":[],"v":1}')
    up.drain(abort=False)
    up.close()

    ids = [f.result() for f in futures]
    assert ids[:12] == ids[12:] and len(set(ids)) == 12
    stats = up.tally.stats
    assert stats.data_blobs_added == 12 and stats.tree_blobs_added == 1
    assert stats.packs_written >= 3
    assert stats.bytes_added_raw == sum(map(len, chunks)) + len(b'{"nodes":[],"v":1}')
    fresh = reopen()  # what a new process sees: the index objects were written
    for chunk, blob_id in zip(chunks, ids, strict=False):
        assert fresh.read_blob(blob_id) == chunk
    assert fresh.index.get(tree_id).type == TREE


def test_known_blobs_are_not_stored_again(repo):
    first = uploader(repo)
    blob_id = first.store_blob(b"x" * 1000)
    first.drain(abort=False)
    first.close()
    second = uploader(repo)
    assert second.store_blob(b"x" * 1000) == blob_id
    assert not second.claim(blob_id)
    second.drain(abort=False)
    second.close()
    assert second.tally.stats.data_blobs_added == 0
    assert second.tally.stats.packs_written == 0


def test_all_zero_chunks_of_one_length_share_one_future(repo):
    up = uploader(repo)
    assert up.zero_chunk(4096) is up.zero_chunk(4096)
    assert up.zero_chunk(4096) is not up.zero_chunk(8192)
    up.drain(abort=False)
    up.close()
    assert up.tally.stats.data_blobs_added == 2


class FailingStore(LocalStore):
    def put(self, key, data):
        if key.startswith("data/"):
            raise StoreError("disk on fire")
        super().put(key, data)


def test_an_upload_failure_fails_the_drain(repo, tmp_path):
    repo.store = FailingStore(repo.store.root)
    up = uploader(repo)
    for _ in range(8):
        up.submit_chunk(os.urandom(50_000)).result()
    with pytest.raises(StoreError, match="disk on fire"):
        up.drain(abort=False)
        up.raise_if_failed()
    up.close()
    with pytest.raises(StoreError):
        up.raise_if_failed()
