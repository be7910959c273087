"""A full disk under the repository or under the restore target: a clear
error, and nothing that was already safe is lost.

The small filesystems are real tmpfs mounts (root only; CI runs as root)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.agent.conftest import make_repo, run_cli


@pytest.fixture
def tiny_fs(tmp_path):
    """tiny_fs("name", mib) -> path of a fresh tmpfs of that size."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounts = []

    def mount(name: str, mib: int):
        point = tmp_path / name
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", point], check=True)
        mounts.append(point)
        return point

    yield mount
    for point in reversed(mounts):
        subprocess.run(["umount", "-l", point], check=False)


def _files(root, count: int, size: int, seed: int = 0):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"f{seed}-{i}.bin").write_bytes(os.urandom(size))


def test_backup_onto_a_full_disk_fails_clearly_and_keeps_the_history(tmp_path, tiny_fs):
    disk = tiny_fs("disk", 6)
    repo = disk / "repo"
    make_repo(repo)
    src = tmp_path / "src"
    _files(src, 2, 512 * 1024)
    first = json.loads(run_cli("backup", "--repo", repo, "--json", src, check=0).stdout)

    # Random data does not compress: 12 MiB more cannot fit in what is left.
    _files(src, 12, 1024 * 1024, seed=1)
    full = run_cli("backup", "--repo", repo, "--json", src)
    assert full.returncode not in (0, 3)
    assert b"No space left on device" in full.stderr + full.stdout

    snaps = json.loads(run_cli("snapshots", "--repo", repo, "--json", check=0).stdout)
    assert [s["id"] for s in snaps] == [first["snapshot_id"]]
    # Restore of the earlier snapshot still works, from the same full disk.
    out = tmp_path / "out"
    run_cli("restore", "--repo", repo, first["snapshot_id"], "--target", out, check=0)
    restored = next(p for p in out.rglob("f0-0.bin"))
    assert restored.read_bytes() == (src / "f0-0.bin").read_bytes()

    # The failed run's packs are unindexed: harmless, reclaimed by a later
    # prune (after its grace period); the repository checks clean meanwhile.
    chk = json.loads(run_cli("check", "--repo", repo, "--read-data", "--json", check=0).stdout)
    assert chk["errors"] == []


def test_restore_onto_a_full_disk_fails_clearly_and_leaves_no_torn_file(tmp_path, tiny_fs):
    repo = tmp_path / "repo"
    make_repo(repo)
    src = tmp_path / "src"
    _files(src, 6, 1024 * 1024)
    snap = json.loads(run_cli("backup", "--repo", repo, "--json", src, check=0).stdout)

    target = tiny_fs("target", 3)
    res = run_cli("restore", "--repo", repo, snap["snapshot_id"], "--target", target, "--json")
    assert res.returncode != 0
    assert b"No space left on device" in res.stderr + res.stdout

    # Whatever is under its final name is whole: a partial write stays in a
    # temporary file or is removed, never shown as the restored file.
    whole = 0
    for path in target.rglob("f0-*.bin"):
        assert path.read_bytes() == (src / path.name).read_bytes(), path
        whole += 1
    assert whole < 6
