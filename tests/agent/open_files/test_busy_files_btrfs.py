"""Issue 15 on a real btrfs filesystem: a busy mailbox costs one copy, files in
a read-only snapshot are read once, the agent's own snapshot folders are never
backed up, mode "required" decides before it snapshots anything, and the job
says which snapshot each source was read from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.daemon import jobs
from agent.engine.backup import run_backup
from agent.engine.repository import Repository
from agent.engine.store import LocalStore
from agent.snapshots import OpenFileMode, SnapshotRequiredError, point_in_time
from agent.snapshots.linux_btrfs import SNAPSHOT_DIR, BtrfsProvider
from agent.snapshots.runner import run
from tests.support import wait_until

MIB = 1024 * 1024
MAILBOX = 64 * MIB
PAGE = 4096

# A mailbox rewritten in place about 8 times a second: random (incompressible)
# pages, the first 8 bytes of each 4 KiB page stamped with the pass number,
# one pwrite and an fsync per pass. A copy with two pass numbers is torn.
MAILBOX_WRITER = r"""
import os, sys, time
path, size, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
log = open(sys.argv[4], "a", buffering=1) if len(sys.argv) > 4 else None  # pass end times
page = 4096
buf = bytearray(os.urandom(size))
stamps = memoryview(buf).cast("Q")
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
n = 0
if pause < 0:  # touch one page after another, without a pause: ctime is always "now"
    os.pwrite(fd, buf, 0)
    open(path + ".ready", "w").close()
    while True:
        n += 1
        os.pwrite(fd, n.to_bytes(8, "little"), (n % (size // page)) * page)
        time.sleep(0.001)
while True:
    n += 1
    stamps[:: page // 8] = memoryview(bytearray(n.to_bytes(8, "little") * (size // page))).cast("Q")
    os.pwrite(fd, buf, 0)
    os.fsync(fd)
    if log:
        log.write(f"{time.monotonic()}\n")
    if n == 2:
        open(path + ".ready", "w").close()
    time.sleep(pause)
"""


def subvolumes(mnt: Path) -> list[str]:
    out = subprocess.run(
        ["btrfs", "subvolume", "list", str(mnt)], capture_output=True, text=True, check=True
    ).stdout
    return sorted(line.split(" path ", 1)[1] for line in out.splitlines())


def make_repo(path: Path) -> Repository:
    return Repository.init(
        LocalStore(path, fsync=False), passphrase="t",
        kdf={"algorithm": "argon2id", "time_cost": 1, "memory_kib": 64, "parallelism": 1},
    )  # fmt: skip


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def passes(data: bytes) -> set[int]:
    return {int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), PAGE)}


def stored(repo: Repository, tree: str, path: Path) -> tuple[dict, bytes]:
    node = dict(repo.walk(tree))[os.fsencode(str(path))]
    return node, b"".join(repo.read_blob(c) for c in node.chunk_ids)


@pytest.fixture
def home(btrfs_mount):
    """A subvolume ``home`` with a nested subvolume ``home/Outlook``."""
    subprocess.run(["btrfs", "subvolume", "create", str(btrfs_mount / "home")], check=True,
                   capture_output=True)  # fmt: skip
    home = btrfs_mount / "home"
    (home / "docs").mkdir()
    (home / "docs" / "notes.txt").write_text("notes\n")
    subprocess.run(["btrfs", "subvolume", "create", str(home / "Outlook")], check=True,
                   capture_output=True)  # fmt: skip
    return home


@pytest.fixture
def mailbox(home):
    """Start the mailbox writer; returns the mailbox path once it is busy."""
    procs = []

    def start(size: int = MAILBOX, pause: float = 0.1, log: Path | None = None) -> Path:
        pst = home / "Outlook" / "archive.pst"
        extra = [str(log)] if log else []
        proc = subprocess.Popen([sys.executable, "-c", MAILBOX_WRITER, str(pst), str(size),
                                 str(pause), *extra])  # fmt: skip
        procs.append(proc)
        wait_until(lambda: Path(f"{pst}.ready").exists() or proc.poll() is not None, 30,
                   what="mailbox writer")  # fmt: skip
        assert proc.poll() is None, "the writer died"
        os.unlink(f"{pst}.ready")
        return pst

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


# --- item 1: live-read retries upload one copy, not one per attempt -------------------


def test_busy_mailbox_read_live_uploads_one_copy_not_one_per_attempt(mailbox, tmp_path):
    pst = mailbox()
    repo = make_repo(tmp_path / "repo")
    retried = 0
    for _ in range(5):  # a read can fall between two passes: then it is simply good
        before = disk_bytes(tmp_path / "repo")
        result = run_backup(repo, [str(pst.parent)], parent=None)
        added = disk_bytes(tmp_path / "repo") - before
        node, data = stored(repo, result.snapshot.tree, pst)
        flagged = node.changed_during_read
        print(f"\noff, busy {MAILBOX // MIB} MiB mailbox: read {result.stats.bytes_read / MIB:.1f}"
              f" MiB in {1 + result.stats.retries} attempts, stored {added / MIB:.1f} MiB,"
              f" dropped {result.stats.bytes_discarded / MIB:.1f} MiB, flagged={flagged}")  # fmt: skip
        # What the repository grew by is at most one copy of the mailbox plus
        # pack, index and snapshot overhead: rejected attempts were never uploaded.
        assert added <= 1.10 * MAILBOX, f"{added / MIB:.1f} MiB stored for {MAILBOX // MIB} MiB"
        assert result.stats.bytes_added <= added
        # What was kept is a one-pass copy, or flagged as torn.
        assert len(data) == MAILBOX
        if not flagged:
            assert len(passes(data)) == 1
        # Every blob stored is referenced by the snapshot: nothing for prune.
        referenced = set(node.content)
        assert result.stats.data_blobs_added <= len(referenced | _other_blobs(repo, result))
        if result.stats.retries:
            retried += 1
            assert result.stats.bytes_read >= 2 * MAILBOX
            assert result.stats.bytes_discarded >= (result.stats.retries - 1) * MAILBOX * 0.9
            break
    assert retried, "the writer kept the file busy: at least one backup re-read it"


def _other_blobs(repo: Repository, result) -> set[bytes]:
    return {
        c
        for path, node in repo.walk(result.snapshot.tree)
        if not path.endswith(b".pst")
        for c in node.chunk_ids
    }


def test_a_recently_saved_file_read_once_is_held_then_stored_whole(home, tmp_path):
    # Saved a moment ago (within BUSY_NS): its read is held aside; when the
    # read is accepted, the held chunks are what the snapshot references.
    pst = home / "Outlook" / "saved.pst"
    pst.write_bytes(os.urandom(8 * MIB))
    time.sleep(0.1)  # past the "changed while a write could still run" margin (80 ms for 8 MiB)
    repo = make_repo(tmp_path / "repo")
    empty = disk_bytes(tmp_path / "repo")
    result = run_backup(repo, [str(home)], parent=None)
    assert result.stats.retries == 0 and result.stats.bytes_discarded == 0
    assert stored(repo, result.snapshot.tree, pst)[1] == pst.read_bytes()
    assert 8 * MIB <= disk_bytes(tmp_path / "repo") - empty <= 1.10 * 8 * MIB


# --- item 4: a file inside a read-only snapshot is read once --------------------------


def test_file_changed_just_before_the_snapshot_is_read_once_inside_it(mailbox, tmp_path):
    # The writer stamps a page every millisecond up to the snapshot, so its ctime in
    # the snapshot is a few ms before the read starts: the live-read rule
    # ("changed within a tick of the read: read again") used to read it twice
    # although nothing can change a read-only snapshot.
    pst = mailbox(size=16 * MIB, pause=-1)
    repo = make_repo(tmp_path / "repo")
    provider = BtrfsProvider(tmp_path / "state")
    recent = tries = 0
    while recent < 2 and tries < 8:  # the race is a few ms wide: try until it was hit twice
        tries += 1
        with point_in_time([str(pst.parent)], "required", providers=[provider]) as pit:
            frozen = Path(pit.translate(str(pst)))
            started = time.time_ns()
            result = run_backup(repo, [str(pst.parent)], parent=None, translate=pit.translate,
                                frozen=pit.covers)  # fmt: skip
            recent += frozen.stat().st_ctime_ns >= started - 20_000_000
            size = frozen.stat().st_size
        node, data = stored(repo, result.snapshot.tree, pst)
        assert result.stats.retries == 0
        assert result.stats.bytes_read == size, "one read of the frozen file"
        assert not node.changed_during_read
        assert len(data) == size
    print(f"\n{recent} of {tries} snapshots held a mailbox changed < 20 ms before the read")
    assert recent >= 1, "the writer did not write close enough to the snapshot"


# --- item 3: the agent's own snapshot folders are never backed up ---------------------


def test_own_snapshot_folders_are_excluded_whatever_the_policy_says(home, tmp_path):
    (home / "Outlook" / "inbox.pst").write_bytes(b"pst" * 1000)
    (home / "docs" / "scratch.tmp").write_text("x")
    repo = make_repo(tmp_path / "repo")
    ctx = jobs.JobContext.new("backup", "manual", args={"paths": [str(home)]})
    policy = {"open_files": "required", "excludes": ["*.tmp"]}  # no default excludes
    outcome = jobs.run_backup(ctx, repo, policy, state_dir=str(tmp_path / "state"))
    assert outcome.state == "succeeded", outcome.error
    names = [p.decode() for p, _ in repo.walk(repo.load_snapshot(outcome.snapshot_id).tree)]
    assert f"{home}/Outlook/inbox.pst" in names and f"{home}/docs/notes.txt" in names
    assert not [n for n in names if SNAPSHOT_DIR in n], names
    assert not [n for n in names if n.endswith(".tmp")]
    assert subvolumes(home.parent) == ["home", "home/Outlook"]


# --- item 5: "required" checks every source before it snapshots any -------------------


def test_required_refuses_before_taking_a_snapshot_it_would_throw_away(home, tmp_path):
    other = tmp_path / "ext4-folder"  # the test's tmp dir: not btrfs here
    other.mkdir()
    ran: list[tuple[str, ...]] = []

    def recording(argv, *, timeout=120):  # the real commands, written down
        ran.append(tuple(argv))
        return run(argv, timeout=timeout)

    provider = BtrfsProvider(tmp_path / "state", runner=recording)
    sources = [str(home), str(other)]
    with (
        pytest.raises(SnapshotRequiredError, match=f"{other} .*not btrfs"),
        point_in_time(sources, OpenFileMode.REQUIRED, providers=[provider]),
    ):
        pytest.fail("no view for a run that cannot be point-in-time")
    assert not [a for a in ran if a[:3] == ("btrfs", "subvolume", "snapshot")], ran
    assert subvolumes(home.parent) == ["home", "home/Outlook"]
    assert not (home / SNAPSHOT_DIR).exists()


# --- item 2: the job says which snapshot each source was read from --------------------


def test_job_records_per_source_snapshot_id_and_hold_time(mailbox, tmp_path):
    pst = mailbox(size=16 * MIB)
    home = pst.parent.parent
    other = tmp_path / "ext4-folder"  # not btrfs: read live in "preferred"
    other.mkdir()
    (other / "a.txt").write_text("a")
    repo = make_repo(tmp_path / "repo")
    ctx = jobs.JobContext.new("backup", "manual", args={"paths": [str(home), str(other)]})
    started = time.monotonic()
    outcome = jobs.run_backup(ctx, repo, {"open_files": "preferred"}, state_dir=str(tmp_path / "s"))
    elapsed = time.monotonic() - started
    assert outcome.state == "succeeded", outcome.error
    report = json.loads(json.dumps(outcome.stats))["point_in_time"]  # as the daemon sends it
    assert report["mode"] == "preferred"
    home_entry, other_entry = report["sources"]
    assert home_entry["path"] == str(home) and home_entry["provider"] == "btrfs"
    ids = home_entry["snapshot_ids"]
    assert len(ids) == 2, "home and its nested Outlook subvolume"
    assert all(i.startswith(f"{home}/") and f"/{SNAPSHOT_DIR}/" in i for i in ids)
    assert 0 < home_entry["held_seconds"] < elapsed
    assert other_entry == {"path": str(other), "provider": "", "live": other_entry["live"]}
    assert "not btrfs" in other_entry["live"]
    assert f"btrfs snapshot of {home}" in report["summary"]
    assert outcome.stats["inconsistent_count"] == 0, "the busy mailbox came from the snapshot"
    assert subvolumes(home.parent) == ["home", "home/Outlook"], "released"
    print(f"\nbtrfs snapshot held {home_entry['held_seconds']:.3f} s of a {elapsed:.3f} s job")


# --- the figures of docs/open-files.md: snapshot lifetime, writer slowdown ------------


def test_writer_keeps_its_pace_while_snapshot_backups_run(mailbox, tmp_path):
    log = tmp_path / "passes.log"
    pst = mailbox(log=log)
    home = pst.parent.parent

    def pass_times() -> list[float]:
        return [float(x) for x in log.read_text().split()]

    wait_until(lambda: len(pass_times()) >= 10, 30, what="10 writer passes")
    repo = make_repo(tmp_path / "repo")
    held, spans = [], []
    for _ in range(3):
        ctx = jobs.JobContext.new("backup", "manual", args={"paths": [str(home)]})
        t0 = time.monotonic()
        outcome = jobs.run_backup(ctx, repo, {"open_files": "required"}, state_dir=str(tmp_path))
        spans.append((t0, time.monotonic()))
        assert outcome.state == "succeeded" and outcome.stats["inconsistent_count"] == 0
        [source] = outcome.stats["point_in_time"]["sources"]
        held.append(source["held_seconds"])
        node, data = stored(repo, repo.load_snapshot(outcome.snapshot_id).tree, pst)
        # crash-consistent: at most one boundary, the newer pass before the older
        stamps = [int.from_bytes(data[j : j + 8], "little") for j in range(0, len(data), PAGE)]
        cuts = [j for j in range(1, len(stamps)) if stamps[j] != stamps[j - 1]]
        assert len(cuts) <= 1 and (not cuts or stamps[0] == stamps[-1] + 1), cuts
    wait_until(lambda: pass_times()[-1] > spans[-1][1] + 1, 30, what="passes after the backups")
    times = pass_times()
    gaps = [(b, b - a) for a, b in zip(times, times[1:], strict=False)]
    before = [g for end, g in gaps if end < spans[0][0]][2:]  # the first passes warm up
    during = [g for end, g in gaps if any(t0 <= end <= t1 + g for t0, t1 in spans)]
    normal = sorted(before)[len(before) // 2]
    lost = sum(max(0.0, g - normal) for g in during) / len(spans)
    print(f"\nsnapshot held {min(held):.3f}-{max(held):.3f} s for a {MAILBOX // MIB} MiB mailbox;"
          f" writer pass {normal * 1000:.0f} ms (median) before, longest during backups"
          f" {max(during) * 1000:.0f} ms; about {lost:.2f} s lost per backup")  # fmt: skip
    assert max(held) < 5, "a snapshot is released as soon as the read is done"
    assert during and max(during) < 2.0, "the writer never stalled (a freeze would hang it)"


# --- a big write is still copying after its ctime: trust comes later -----------------


def test_a_big_file_written_a_moment_ago_is_not_trusted_on_the_20ms_rule(home, tmp_path):
    # The kernel stamps ctime when a write(2) starts; one 64 MiB pwrite can
    # still be copying 50 ms later (measured: 2 of 12 live backups of such a
    # mailbox stored a torn copy as good under the 20 ms rule). A read 50 ms
    # after the write began is therefore not trusted: it is read again.
    pst = home / "Outlook" / "big.pst"
    fd = os.open(pst, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, os.urandom(MAILBOX), 0)  # one write call, like the mailbox writer
    finally:
        os.close(fd)
    wait_until(lambda: time.time_ns() - pst.stat().st_ctime_ns > 50_000_000, 5, interval=0.01,
               what="50 ms after the write began")  # fmt: skip
    repo = make_repo(tmp_path / "repo")
    result = run_backup(repo, [str(pst.parent)], parent=None)
    assert result.stats.retries >= 1, "read again once the write must have finished"
    assert not result.warnings, "a file that went quiet is stored as a good copy"
    assert stored(repo, result.snapshot.tree, pst)[1] == pst.read_bytes()
