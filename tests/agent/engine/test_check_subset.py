"""check(read_data, packs=...): only the named packs are read whole (the
console's rotating verification, console/storage/verification.py); the rest
are checked for presence and size, and the structure is checked in full."""

from __future__ import annotations

import os

from agent.engine.backup import run_backup
from agent.engine.check import run_check
from agent.engine.pack import TREE, pack_key


def test_only_the_named_packs_are_read(repo, reopen, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    repo.pack_size = 64 * 1024  # a few packs
    for i in range(4):
        (src / f"f{i}.bin").write_bytes(os.urandom(60 * 1024))
    snapshot_id = run_backup(repo, [str(src)]).snapshot_id
    repo = reopen()
    data_packs = sorted({e.pack_id for _b, e in repo.index.items() if e.type != TREE})
    assert len(data_packs) >= 2
    victim, spared = data_packs[0], data_packs[1]
    entry = next(e for _b, e in repo.index.items() if e.pack_id == victim and e.type != TREE)
    path = repo.store.root / pack_key(victim)
    data = bytearray(path.read_bytes())
    data[entry.offset + 10] ^= 0x01
    os.chmod(path, 0o600)
    path.write_bytes(bytes(data))
    repo = reopen()

    spared_size = (repo.store.root / pack_key(spared)).stat().st_size
    report = run_check(repo, read_data=True, packs=[spared])
    assert report.ok and report.bytes_read == spared_size  # the damaged pack was not read
    report = run_check(repo, read_data=True, packs=[victim, spared])
    assert not report.ok
    damaged = [(e.snapshot, e.path) for e in report.errors if e.kind == "damaged-data"]
    assert len(damaged) == 1 and damaged[0][0] == snapshot_id
    assert damaged[0][1].startswith(str(src) + "/f")
    assert report.bytes_read == spared_size + len(data)
    # packs=[] reads nothing but still checks the structure and the sizes
    path.write_bytes(bytes(data[: entry.offset + 5]))  # now also truncated
    report = run_check(reopen(), read_data=True, packs=[])
    assert report.bytes_read == 0
    assert any(e.kind == "damaged-pack" and "truncated" in e.message for e in report.errors)
