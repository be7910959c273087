"""The consistent-read fallback, for real: a writer process rewrites a file in
place while the engine backs it up. A torn copy must never be stored as good:
the engine re-reads it, and if it keeps changing stores it flagged
``changed-during-read`` with a warning that reaches the backup result and the
daemon's job outcome (what it sends to the console)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agent.daemon import jobs
from agent.engine.backup import run_backup
from agent.engine.chunker import ChunkerParams
from agent.engine.repository import Repository
from agent.engine.store import LocalStore
from agent.engine.tree import CHANGED_DURING_READ
from tests.support import wait_until

SIZE, PIECE = 2 * 1024 * 1024, 64 * 1024

# Rewrites the whole file in place, 64 KiB at a time, every 8-byte word of a
# generation carrying the generation number: a copy with two numbers is torn.
WRITER = r"""
import os, sys, time
path, pause = sys.argv[1], float(sys.argv[2])
size, piece = int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_RDWR)
gen = 0
while True:
    gen += 1
    block = gen.to_bytes(8, "big") * (piece // 8)
    if pause < 0:  # append mode: the file grows, then starts over
        os.write(fd, block)
        if os.fstat(fd).st_size > 16 * size:
            os.ftruncate(fd, size)
            os.lseek(fd, size, 0)
    else:
        # One write call per generation: a writer descheduled between
        # pieces would leave a mixed file *at rest*, which no reader can tell
        # from a consistent one (a snapshot would capture the same bytes).
        os.pwrite(fd, block * (size // piece), 0)
    if gen == 2:
        open(path + ".ready", "w").close()
    if pause > 0:
        time.sleep(pause)
"""


@pytest.fixture
def repo(tmp_path) -> Repository:
    return Repository.init(
        LocalStore(tmp_path / "repo", fsync=False),
        passphrase="test",
        kdf={"algorithm": "argon2id", "time_cost": 1, "memory_kib": 64, "parallelism": 1},
        chunker=ChunkerParams(min_size=16 * 1024, avg_size=64 * 1024, max_size=256 * 1024, seed=3),
    )


@pytest.fixture
def writer(tmp_path):
    procs = []

    def start(pause: float):
        src = tmp_path / "src"
        src.mkdir(exist_ok=True)
        doc = src / "Budget.xlsx"
        doc.write_bytes(b"\0" * SIZE)
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(doc), str(pause), str(SIZE), str(PIECE)]
        )
        procs.append(proc)
        wait_until(lambda: os.path.exists(str(doc) + ".ready") or proc.poll() is not None, 15,
                   what="writer process")  # fmt: skip
        assert proc.poll() is None
        os.unlink(str(doc) + ".ready")
        return src, doc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def stored(repo: Repository, snapshot_tree: str, doc) -> tuple[dict, bytes]:
    for path, node in repo.walk(snapshot_tree):
        if path.endswith(os.fsencode(doc.name)):
            data = b"".join(repo.read_blob(c) for c in node.chunk_ids)
            return node, data
    raise AssertionError(f"{doc} not in the snapshot")


def generations(data: bytes) -> set[bytes]:
    return {data[i : i + 8] for i in range(0, len(data), 8)}


# The kernel stamps mtime/ctime from a coarse clock (one tick is 1-10 ms), so
# in-place writes during a read that fall in the same tick as the last one
# leave size, mtime and ctime unchanged: measured here, 87 % of reads
# overlapping a busy writer were torn with identical before/after stat. The
# engine distrusts files changed within a tick of the read (docs/open-files.md,
# "Coarse timestamps"); these tests guard that.
def test_busy_writer_never_yields_a_torn_copy_stored_as_good(repo, writer):
    src, doc = writer(pause=0)  # rewrites continuously: the file never holds still
    outcomes = {"flagged": 0, "consistent": 0}
    for _ in range(5):
        result = run_backup(repo, [str(src)], parent=None)
        node, data = stored(repo, result.snapshot.tree, doc)
        flagged = node.changed_during_read
        if flagged:
            outcomes["flagged"] += 1
            warning = [w for w in result.warnings if w.path == str(doc)]
            assert [w.kind for w in warning] == ["changed-during-read"]
            assert any(w["kind"] == "changed-during-read" for w in result.snapshot.warnings)
        else:
            assert len(data) == SIZE
            assert len(generations(data)) == 1, "a torn copy was stored as good"
            outcomes["consistent"] += 1
    print(f"\nbusy writer, 5 backups: {outcomes}")
    assert outcomes["flagged"] >= 1, "a file that never holds still is reported"


def test_occasional_writer_is_retried_into_a_consistent_copy(repo, writer):
    src, doc = writer(pause=0.05)  # saves ~20 times a second, like an autosave
    retries = consistent = 0
    for _ in range(8):
        result = run_backup(repo, [str(src)], parent=None)
        node, data = stored(repo, result.snapshot.tree, doc)
        retries += result.stats.retries
        if not node.changed_during_read:
            assert len(generations(data)) == 1, "a torn copy was stored as good"
            consistent += 1
        else:
            assert any(w.kind == "changed-during-read" for w in result.warnings)
    print(f"\noccasional writer, 8 backups: {consistent} consistent, {retries} re-reads")
    assert consistent >= 6


def test_changed_during_read_warning_reaches_the_daemon_job_outcome(repo, writer):
    # A file that grows while read (a log, a download) changes size: detected
    # whatever the timestamp granularity, so this test does not hit the defect.
    src, doc = writer(pause=-1)
    ctx = jobs.JobContext.new("backup", "manual")
    policy = {"sources": {jobs.os_name(): [str(src)]}, "open_files": "off"}  # the policy contract
    for _ in range(10):  # the writer may be descheduled for a whole read: try again
        outcome = jobs.run_backup(ctx, repo, policy)
        assert outcome.snapshot_id
        node, _ = stored(repo, repo.load_snapshot(outcome.snapshot_id).tree, doc)
        if node.flags:
            break
    assert node.flags == [CHANGED_DURING_READ]
    [line] = [w for w in outcome.warnings if str(doc) in w]
    assert line.startswith(f"changed-during-read: {doc}: kept changing while read")
