"""Damaged repositories: flipped bytes in packs, indexes, trees and snapshots
give clear errors, and check names every damaged file by snapshot and path."""

from __future__ import annotations

import os

import pytest

from agent.engine.backup import run_backup
from agent.engine.check import run_check
from agent.engine.errors import CorruptObject
from agent.engine.pack import pack_key
from tests.agent.helpers import read, restored


@pytest.fixture
def backed_up(repo, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "victim.bin").write_bytes(os.urandom(200_000))
    (src / "sub" / "fine.txt").write_bytes(b"fine\n" * 100)
    (src / "other.bin").write_bytes(os.urandom(50_000))
    result = run_backup(repo, [str(src)])
    return repo, src, result


def node_of(repo, snapshot, path):
    want = os.fsencode(path)
    return next(n for p, n in repo.walk(snapshot.tree) if p == want)


def flip(repo, key: str, offset: int) -> None:
    path = repo.store.root / key
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    os.chmod(path, 0o600)
    path.write_bytes(bytes(data))


def test_flipped_byte_in_data_pack(backed_up, reopen, tmp_path):
    repo, src, result = backed_up
    victim = node_of(repo, result.snapshot, src / "victim.bin")
    entry = repo.index.get(victim.content[1])
    flip(repo, pack_key(entry.pack_id), entry.offset + 40)
    repo = reopen()
    assert run_check(repo).ok  # structure is intact
    report = run_check(repo, read_data=True)
    assert not report.ok
    files = [(e.snapshot, e.path) for e in report.errors if e.kind == "damaged-data"]
    assert files == [(result.snapshot_id, str(src / "victim.bin"))]
    assert any(e.kind == "damaged-pack" for e in report.errors)
    assert report.damaged_files == 1
    # restore: the damaged file is reported and not written, the rest is restored
    from agent.engine.restore import run_restore

    out = tmp_path / "out"
    res = run_restore(repo, "latest", out)
    assert [(e.kind, e.path) for e in res.errors] == [("damaged", str(src / "victim.bin"))]
    assert not os.path.exists(restored(out, src / "victim.bin"))
    assert read(restored(out, src / "sub" / "fine.txt")) == b"fine\n" * 100
    assert not [n for n in os.listdir(restored(out, src)) if n.startswith(b".cairn-restore")]


def test_reading_a_damaged_blob_is_a_clear_error(backed_up, reopen):
    repo, src, result = backed_up
    victim = node_of(repo, result.snapshot, src / "victim.bin")
    blob = victim.content[0]
    entry = repo.index.get(blob)
    flip(repo, pack_key(entry.pack_id), entry.offset + entry.length - 1)  # the tag
    with pytest.raises(CorruptObject, match="failed authentication"):
        reopen().read_blob(blob)


def test_flipped_byte_in_index(backed_up, reopen):
    repo, src, result = backed_up
    keys = sorted(repo.store.list("index/"))
    for key in keys:
        flip(repo, key, 30)
    repo = reopen()  # opening still works: the damage is recorded
    assert len(repo.damaged_indexes) == len(keys)
    report = run_check(repo)
    kinds = {e.kind for e in report.errors}
    assert "damaged-index" in kinds
    assert any(e.object in keys for e in report.errors if e.kind == "damaged-index")
    # without an index, the snapshot's listings cannot be resolved: named by snapshot
    assert any(e.snapshot == result.snapshot_id for e in report.errors)
    # a new backup stores the data again (self-healing), and its snapshot checks out
    again = run_backup(repo, [str(src)])
    assert again.stats.data_blobs_added > 0
    report = run_check(reopen(), read_data=True)
    bad_snapshots = {e.snapshot for e in report.errors if e.snapshot}
    assert again.snapshot_id not in bad_snapshots


def test_flipped_byte_in_tree_pack(backed_up, reopen):
    repo, src, result = backed_up
    sub = node_of(repo, result.snapshot, src / "sub")
    entry = repo.index.get(sub.subtree)
    flip(repo, pack_key(entry.pack_id), entry.offset + 20)
    report = run_check(reopen())
    damaged = [(e.kind, e.snapshot, e.path) for e in report.errors]
    assert ("damaged-tree", result.snapshot_id, str(src / "sub")) in damaged


def test_missing_and_truncated_packs(backed_up, reopen):
    repo, src, result = backed_up
    other = node_of(repo, result.snapshot, src / "other.bin")
    entry = repo.index.get(other.content[0])
    path = repo.store.root / pack_key(entry.pack_id)
    data = path.read_bytes()
    path.write_bytes(data[: entry.offset + 10])
    report = run_check(reopen())
    assert any(e.kind == "damaged-pack" and "truncated" in e.message for e in report.errors)
    assert (result.snapshot_id, str(src / "other.bin")) in {
        (e.snapshot, e.path) for e in report.errors if e.kind == "damaged-data"
    }
    path.unlink()
    report = run_check(reopen())
    assert any(e.kind == "missing-pack" for e in report.errors)
    assert str(src / "other.bin") in {e.path for e in report.errors}


def test_damaged_snapshot_object(backed_up, reopen):
    repo, _src, result = backed_up
    flip(repo, f"snapshots/{result.snapshot_id}", 50)
    repo = reopen()
    report = run_check(repo)
    assert [(e.kind, e.snapshot) for e in report.errors] == [
        ("damaged-snapshot", result.snapshot_id)
    ]
    errors = []
    assert repo.snapshots(errors=errors) == [] and len(errors) == 1


def test_unindexed_pack_is_harmless(backed_up, reopen):
    repo, _src, _result = backed_up
    repo.store.put("data/00/" + "00" * 32, b"CAIRNPK1 left by a crash")
    report = run_check(reopen(), read_data=True)
    assert report.ok
    assert any("not in any index" in line for line in report.info)


def test_rebuild_index_from_pack_headers(backed_up, reopen, tmp_path):
    from agent.engine.repair import rebuild_index
    from agent.engine.restore import run_restore

    repo, src, result = backed_up
    for key in list(repo.store.list("index/")):
        repo.store.delete(key)  # every index object lost
    repo = reopen()
    assert len(repo.index) == 0 and not run_check(repo).ok
    report = rebuild_index(repo)
    assert report.packs_indexed == report.packs_scanned > 0 and not report.unreadable
    repo = reopen()
    assert run_check(repo, read_data=True).ok
    out = tmp_path / "out"
    assert run_restore(repo, result.snapshot_id, out).ok
    assert read(restored(out, src / "victim.bin")) == read(src / "victim.bin")
    # nothing left to do the second time
    assert rebuild_index(repo).packs_scanned == 0
