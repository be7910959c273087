"""The btrfs provider against a real btrfs filesystem (loop-mounted image)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.snapshots import OpenFileMode, point_in_time
from agent.snapshots.base import SnapshotError
from agent.snapshots.ledger import Ledger
from agent.snapshots.linux_btrfs import SNAPSHOT_DIR, BtrfsProvider

WRITER = r"""
import os, sys, time
log, doc = sys.argv[1], sys.argv[2]
n = 0
with open(log, "a", buffering=1) as out:
    while True:
        n += 1
        out.write(f"{n}\n")
        # rewrite doc in place: every byte carries the generation number
        with open(doc, "r+b") as d:
            d.write(bytes([n % 256]) * 65536)
        time.sleep(0.002)
"""


def subvolumes(mnt: Path) -> list[str]:
    out = subprocess.run(
        ["btrfs", "subvolume", "list", str(mnt)], capture_output=True, text=True, check=True
    ).stdout
    return [line.split(" path ", 1)[1] for line in out.splitlines()]


@pytest.fixture
def data(btrfs_mount):
    subprocess.run(["btrfs", "subvolume", "create", str(btrfs_mount / "home")], check=True,
                   capture_output=True)  # fmt: skip
    home = btrfs_mount / "home"
    (home / "docs").mkdir()
    (home / "docs" / "report.docx").write_bytes(b"\0" * 65536)
    return home


def test_available_only_on_btrfs(data, tmp_path):
    provider = BtrfsProvider(tmp_path / "state")
    assert provider.available([str(data / "docs")])
    verdict = provider.available([str(tmp_path)])  # the test's tmp dir: not btrfs here
    assert not verdict and "not btrfs" in verdict.reason


def test_snapshot_is_a_frozen_point_in_time_while_a_writer_keeps_writing(data, tmp_path):
    log, doc = data / "docs" / "app.log", data / "docs" / "report.docx"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(doc)])
    try:
        deadline = time.monotonic() + 10
        while (not log.exists() or log.stat().st_size < 200) and time.monotonic() < deadline:
            time.sleep(0.01)
        provider = BtrfsProvider(tmp_path / "state")
        with point_in_time(
            [str(data / "docs")], OpenFileMode.REQUIRED, providers=[provider]
        ) as pit:
            assert pit.providers == ["btrfs"]
            frozen_log = Path(pit.translate(str(log)))
            assert frozen_log != log and SNAPSHOT_DIR in str(frozen_log)
            first = frozen_log.read_bytes()
            first_doc = Path(pit.translate(str(doc))).read_bytes()
            time.sleep(0.5)  # the writer keeps going on the live subvolume
            assert frozen_log.read_bytes() == first
            assert Path(pit.translate(str(doc))).read_bytes() == first_doc
            lines = first.decode().split("\n")
            complete = [int(x) for x in lines[:-1]]
            assert complete == list(range(1, len(complete) + 1))
            assert log.stat().st_size > len(first), "the live file kept growing"
            with pytest.raises(OSError):  # read-only snapshot
                frozen_log.write_bytes(b"x")
            # Files created after the snapshot are not in it.
            (data / "docs" / "later.txt").write_text("after")
            assert not Path(pit.translate(str(data / "docs" / "later.txt"))).exists()
            assert Ledger(tmp_path / "state").entries("btrfs")
        assert not frozen_log.exists(), "snapshot released at the end of the block"
    finally:
        writer.kill()
        writer.wait()
    assert subvolumes(data.parent) == ["home"]
    assert Ledger(tmp_path / "state").entries() == []
    assert not (data / SNAPSHOT_DIR).exists()


def test_nested_subvolume_gets_its_own_snapshot(data, tmp_path):
    subprocess.run(["btrfs", "subvolume", "create", str(data / "docs" / "mail")], check=True,
                   capture_output=True)  # fmt: skip
    (data / "docs" / "mail" / "inbox.pst").write_bytes(b"pst" * 1000)
    with BtrfsProvider(tmp_path / "state").open([str(data / "docs")]) as view:
        assert len(view.ids) == 2
        assert Path(view.translate(str(data / "docs" / "mail" / "inbox.pst"))).read_bytes() == (
            b"pst" * 1000
        )
        assert any("one after another" in w for w in view.warnings)
    assert sorted(subvolumes(data.parent)) == ["home", "home/docs/mail"]


def test_stale_snapshot_from_a_crashed_run_is_removed_on_next_start(data, tmp_path):
    state = tmp_path / "state"
    crash = (
        "import os, sys\n"
        "from agent.snapshots.linux_btrfs import BtrfsProvider\n"
        "with BtrfsProvider(sys.argv[1]).open([sys.argv[2]]) as v:\n"
        "    print(v.ids[0], flush=True)\n"
        "    os._exit(3)  # a crash: no cleanup runs\n"
    )
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-c", crash, str(state), str(data)], cwd=root,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    leftover = proc.stdout.strip()
    assert os.path.isdir(leftover) and len(subvolumes(data.parent)) == 2
    lines = BtrfsProvider(state).cleanup_stale()
    assert lines == [f"btrfs: removed stale snapshot {leftover}"]
    assert subvolumes(data.parent) == ["home"]
    assert Ledger(state).entries() == []


def test_failed_snapshot_raises_and_leaves_nothing(data, tmp_path, recorded):
    runner = recorded([(["btrfs", "subvolume", "list"], (0, "", "")),
                       (["btrfs", "subvolume", "show"], (0, "home\n", "")),
                       (["btrfs", "subvolume", "snapshot"],
                        (1, "", "ERROR: cannot snapshot '/x': Read-only file system\n"))])  # fmt: skip
    provider = BtrfsProvider(tmp_path / "state", runner=runner)
    with pytest.raises(SnapshotError, match="Read-only file system"), provider.open([str(data)]):
        pass
    assert Ledger(tmp_path / "state").entries() == []
