"""Restore reads packs in ranges no larger than its store finds worth one
request: big for remote stores (per-request cost), small for a local disk
(memory)."""

import os

from agent.engine.backup import run_backup
from agent.engine.repository import Repository
from agent.engine.restore import run_restore
from agent.engine.store import LocalStore, ObjectStore
from tests.agent.conftest import PASSPHRASE, make_repo


class RecordingStore(LocalStore):
    """A local store that records the length of every ranged read."""

    def __init__(self, root, max_read_range: int):
        super().__init__(root)
        self.max_read_range = max_read_range
        self.ranges: list[int] = []

    def get_range(self, key, offset, length):
        self.ranges.append(length)
        return super().get_range(key, offset, length)


def test_stores_declare_their_read_range():
    assert LocalStore.max_read_range < ObjectStore.max_read_range


def test_restore_ranges_follow_the_store(tmp_path):
    make_repo(tmp_path / "repo", pack_size=4 * 1024 * 1024)
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    repo = Repository.open(LocalStore(tmp_path / "repo"), passphrase=PASSPHRASE)
    snapshot_id = run_backup(repo, [str(src)]).snapshot_id

    results = {}
    for limit in (256 * 1024, 16 * 1024 * 1024):
        store = RecordingStore(tmp_path / "repo", limit)
        repo = Repository.open(store, passphrase=PASSPHRASE)
        target = tmp_path / f"out-{limit}"
        assert run_restore(repo, snapshot_id, str(target)).ok
        assert (target / str(src).lstrip("/") / "big.bin").read_bytes() == (
            src / "big.bin"
        ).read_bytes()
        results[limit] = store.ranges

    small, large = results[256 * 1024], results[16 * 1024 * 1024]
    max_chunk = 128 * 1024  # a range may exceed the limit by at most one blob
    assert max(small) <= 256 * 1024 + max_chunk + 4096
    assert len(small) > len(large)
