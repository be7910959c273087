"""The btrfs provider against a real btrfs filesystem (loop-mounted image)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.policy.sources import DEFAULT_PATTERNS
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


def make_repo(tmp_path):
    from agent.engine.repository import Repository
    from agent.engine.store import LocalStore

    return Repository.init(
        LocalStore(tmp_path / "repo", fsync=False), passphrase="t",
        kdf={"algorithm": "argon2id", "time_cost": 1, "memory_kib": 64, "parallelism": 1},
    )  # fmt: skip


def test_nested_subvolume_is_snapshotted_and_backed_up_through_the_parent(data, tmp_path):
    from agent.engine.backup import run_backup

    subprocess.run(["btrfs", "subvolume", "create", str(data / "docs" / "mail")], check=True,
                   capture_output=True)  # fmt: skip
    pst = data / "docs" / "mail" / "inbox.pst"
    pst.write_bytes(b"pst" * 1000)
    repo = make_repo(tmp_path)
    with BtrfsProvider(tmp_path / "state").open([str(data / "docs")]) as view:
        assert len(view.ids) == 2
        assert Path(view.translate(str(pst))).read_bytes() == b"pst" * 1000
        assert any("one after another" in w for w in view.warnings)
        # The engine walks the parent's snapshot: the nested one is mounted in it.
        result = run_backup(repo, [str(data)], parent=None, translate=view.translate,
                            excludes=DEFAULT_PATTERNS)  # fmt: skip
    nodes = dict(repo.walk(result.snapshot.tree))
    node = nodes[os.fsencode(str(pst))]
    assert b"".join(repo.read_blob(c) for c in node.content) == b"pst" * 1000
    assert sorted(subvolumes(data.parent)) == ["home", "home/docs/mail"]
    assert Ledger(tmp_path / "state").entries() == []
    assert str(data) not in Path("/proc/self/mounts").read_text()


def test_stale_snapshot_from_a_crashed_run_is_removed_on_next_start(data, tmp_path):
    state = tmp_path / "state"
    subprocess.run(["btrfs", "subvolume", "create", str(data / "mail")], check=True,
                   capture_output=True)  # fmt: skip
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
    assert os.path.isdir(leftover) and len(subvolumes(data.parent)) == 4
    bind = os.path.join(leftover, "mail")
    assert os.path.ismount(bind), "the nested snapshot is still mounted in the parent's"
    lines = BtrfsProvider(state).cleanup_stale()
    assert lines[0] == f"btrfs: unmounted stale bind mount {bind}"
    assert f"btrfs: removed stale snapshot {leftover}" in lines and len(lines) == 3
    assert sorted(subvolumes(data.parent)) == ["home", "home/mail"]
    assert Ledger(state).entries() == []
    assert str(data) not in Path("/proc/self/mounts").read_text()


def test_failed_snapshot_raises_and_leaves_nothing(data, tmp_path, recorded):
    runner = recorded([(["btrfs", "subvolume", "list"], (0, "", "")),
                       (["btrfs", "subvolume", "show"], (0, "home\n", "")),
                       (["btrfs", "subvolume", "snapshot"],
                        (1, "", "ERROR: cannot snapshot '/x': Read-only file system\n"))])  # fmt: skip
    provider = BtrfsProvider(tmp_path / "state", runner=runner)
    with pytest.raises(SnapshotError, match="Read-only file system"), provider.open([str(data)]):
        pass
    assert Ledger(tmp_path / "state").entries() == []


GROWER = r"""
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
n = 0
open(sys.argv[1] + ".ready", "w").close()
while True:
    n += 1
    os.write(fd, n.to_bytes(8, "big") * 8192)  # 64 KiB records, ~10 MB/s
    time.sleep(0.005)
"""


def test_engine_backup_through_the_snapshot_is_frozen_and_records_original_paths(data, tmp_path):
    from agent.engine.backup import run_backup

    repo = make_repo(tmp_path)
    log = data / "docs" / "mail.log"
    log.write_bytes(b"")
    grower = subprocess.Popen([sys.executable, "-c", GROWER, str(log)])
    try:
        deadline = time.monotonic() + 10
        while not Path(str(log) + ".ready").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.unlink(str(log) + ".ready")
        time.sleep(0.2)
        with point_in_time(
            [str(data)], "required", providers=[BtrfsProvider(tmp_path / "s")]
        ) as pit:
            result = run_backup(repo, [str(data)], parent=None, translate=pit.translate,
                                excludes=DEFAULT_PATTERNS)  # fmt: skip
    finally:
        grower.kill()
        grower.wait()
    nodes = dict(repo.walk(result.snapshot.tree))
    [(path, node)] = [(p, n) for p, n in nodes.items() if p.endswith(b"/mail.log")]
    assert path == os.fsencode(str(log)), "the original path is recorded, not the snapshot's"
    assert not node.changed_during_read, "a frozen file never changes"
    content = b"".join(repo.read_blob(c) for c in node.content)
    assert len(content) == node.size > 0
    # Records 1, 2, 3... in order: a consistent prefix of the log. Only the tail
    # may be cut or still zero (a snapshot is crash-consistent: a write in
    # flight at the instant of the snapshot may be partly there).
    firsts = [int.from_bytes(content[i : i + 8], "big") for i in range(0, len(content), 65536)]
    while firsts and firsts[-1] == 0:
        firsts.pop()
    assert len(firsts) >= 5 and firsts == list(range(1, len(firsts) + 1))
    assert not any(w.kind == "changed-during-read" for w in result.warnings)
    assert not any(SNAPSHOT_DIR.encode() in p for p in nodes), "the default excludes skip it"
