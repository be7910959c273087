"""Forget and prune (agent/engine/prune.py): lock-free mark and sweep.

Every test ends the same way: ``check --read-data`` passes and every kept
snapshot restores byte for byte."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from agent.engine.backup import run_backup
from agent.engine.check import run_check
from agent.engine.pack import DATA, pack_key
from agent.engine.prune import DEFAULT_GRACE, PruneError, forget, plan_prune, prune
from agent.engine.prune_state import load_index_objects
from agent.engine.repository import Repository
from agent.engine.restore import run_restore
from agent.engine.retention import RetentionPolicy
from agent.engine.store import LocalStore
from tests.agent.conftest import PASSPHRASE, ROOT, cli_env, make_repo, run_cli
from tests.agent.helpers import snapshot_of_disk

NOW = dt.datetime.now(dt.UTC)
LATER = NOW + DEFAULT_GRACE + dt.timedelta(minutes=1)


def open_repo(path, store_cls=LocalStore) -> Repository:
    return Repository.open(store_cls(path), passphrase=PASSPHRASE)


def write_files(src, names, size=96 * 1024, seed=b""):
    os.makedirs(src, exist_ok=True)
    for name in os.listdir(src):
        os.unlink(os.path.join(src, name))
    for name in names:
        with open(os.path.join(src, name), "wb") as f:
            f.write(os.urandom(size) if not seed else (seed + name.encode()) * (size // 16))


def all_keys(path) -> set[str]:
    return set(LocalStore(path).list(""))


def pack_bytes(path) -> int:
    store = LocalStore(path)
    return sum(store.size(k) for k in store.list("data/"))


def verify(path, expected: dict, tmp_path):
    """check --read-data passes; each snapshot in ``expected`` restores
    identical to the recorded disk state."""
    repo = open_repo(path)
    report = run_check(repo, read_data=True)
    assert report.ok, [str(e) for e in report.errors]
    assert {s.id for s in repo.snapshots()} >= set(expected)
    for sid, (src, disk) in expected.items():
        target = tmp_path / f"restore-{sid[:8]}-{os.urandom(3).hex()}"
        run_restore(repo, sid, str(target))
        assert snapshot_of_disk(str(target) + str(src), mtimes=False) == disk


@pytest.fixture
def repo_path(tmp_path):
    make_repo(tmp_path / "repo")
    return tmp_path / "repo"


def backup(path, src, repo=None, **kw) -> str:
    repo = repo or open_repo(path)
    return run_backup(repo, [str(src)], hostname="pc1", workers=2, **kw).snapshot_id


def state(src):
    return snapshot_of_disk(str(src), mtimes=False)


def history(repo_path, tmp_path, rounds=3):
    """``rounds`` backups of a directory whose files are all new each time."""
    src = tmp_path / "src"
    snaps = []
    for i in range(rounds):
        write_files(src, [f"r{i}-{j}" for j in range(3)])
        snaps.append((backup(repo_path, src), state(src)))
    return src, snaps


def test_forget_then_prune_reclaims_after_grace(repo_path, tmp_path):
    src, snaps = history(repo_path, tmp_path)
    repo = open_repo(repo_path)
    result, report = forget(repo, RetentionPolicy(keep_last=1))
    assert [s.id for s in result.keep] == [snaps[-1][0]]
    assert len(report.forget) == 2
    before = pack_bytes(repo_path)

    first = prune(open_repo(repo_path), now=NOW)
    assert first.packs_deleted == 0 and first.packs_marked > 0 and first.marker
    assert pack_bytes(repo_path) == before  # nothing deleted in the marking run
    verify(repo_path, {snaps[-1][0]: (src, snaps[-1][1])}, tmp_path)

    early = prune(open_repo(repo_path), now=NOW + dt.timedelta(hours=1))
    assert early.packs_deleted == 0 and early.markers_pending == 1

    second = prune(open_repo(repo_path), now=LATER)
    assert second.markers_swept == 1
    assert second.packs_deleted == first.packs_marked
    assert second.bytes_deleted == first.bytes_marked > 0
    assert pack_bytes(repo_path) == before - second.bytes_deleted
    assert list(LocalStore(repo_path).list("prune/")) == []
    assert len(list(LocalStore(repo_path).list("index/"))) == 1  # compacted
    verify(repo_path, {snaps[-1][0]: (src, snaps[-1][1])}, tmp_path)

    third = prune(open_repo(repo_path), now=LATER + DEFAULT_GRACE * 2)
    assert third.packs_deleted == third.packs_marked == 0  # idempotent


def test_dry_runs_change_nothing(repo_path, tmp_path):
    _src, snaps = history(repo_path, tmp_path, rounds=2)
    keys = all_keys(repo_path)
    _, report = forget(open_repo(repo_path), RetentionPolicy(keep_last=1), dry_run=True)
    assert len(report.forget) == 1 and report.dry_run
    assert all_keys(repo_path) == keys
    as_if = prune(
        open_repo(repo_path), dry_run=True, now=NOW, assume_forgotten={report.forget[0]["id"]}
    )
    assert as_if.packs_marked > 0
    assert prune(open_repo(repo_path), dry_run=True, now=NOW).packs_marked == 0
    assert all_keys(repo_path) == keys
    forget(open_repo(repo_path), RetentionPolicy(keep_last=1))
    keys = all_keys(repo_path)
    dry = prune(open_repo(repo_path), dry_run=True, now=NOW)
    assert dry.packs_marked > 0 and dry.bytes_marked > 0 and not dry.marker
    assert all_keys(repo_path) == keys
    prune(open_repo(repo_path), now=NOW)
    keys = all_keys(repo_path)
    dry = prune(open_repo(repo_path), dry_run=True, now=LATER)
    assert dry.packs_deleted > 0 and dry.bytes_deleted > 0
    assert all(k in keys for k in dry.deleted)
    assert all_keys(repo_path) == keys


def test_backup_started_before_the_mark_may_reuse_condemned_data(repo_path, tmp_path):
    """A backup that loaded the index before the mark deduplicates against a
    forgotten snapshot's blob and finishes after the mark: the sweep spares
    the pack."""
    src = tmp_path / "src"
    write_files(src, ["a"], seed=b"content-of-a----")
    backup(repo_path, src)
    write_files(src, ["b"], seed=b"content-of-b----")
    backup(repo_path, src)
    forget(open_repo(repo_path), RetentionPolicy(keep_last=1))  # forgets the one with "a"
    running = open_repo(repo_path)  # the backup starts: index loaded, no marker yet
    marked = prune(open_repo(repo_path), now=NOW)
    assert marked.packs_marked > 0
    write_files(src, ["a"], seed=b"content-of-a----")  # "a" is back
    sid = backup(repo_path, src, repo=running)  # reuses a's condemned blobs
    expected = {sid: (src, state(src))}
    swept = prune(open_repo(repo_path), now=LATER)
    assert swept.markers_swept == 1 and swept.packs_spared > 0
    verify(repo_path, expected, tmp_path)


def test_backup_started_after_the_mark_stores_condemned_data_again(repo_path, tmp_path):
    src = tmp_path / "src"
    write_files(src, ["a"], seed=b"content-of-a----")
    backup(repo_path, src)
    write_files(src, ["b"], seed=b"content-of-b----")
    backup(repo_path, src)
    forget(open_repo(repo_path), RetentionPolicy(keep_last=1))
    prune(open_repo(repo_path), now=NOW)
    running = open_repo(repo_path)  # starts after the mark: sees the marker
    write_files(src, ["a"], seed=b"content-of-a----")
    # the sweep runs while this backup is in progress (before it writes anything)
    swept = prune(open_repo(repo_path), now=LATER)
    assert swept.packs_deleted > 0 and swept.packs_spared == 0
    sid = backup(repo_path, src, repo=running)
    verify(repo_path, {sid: (src, state(src))}, tmp_path)


def test_repack_of_partly_used_packs(repo_path, tmp_path):
    src = tmp_path / "src"
    write_files(src, [f"f{j}" for j in range(10)], size=20 * 1024)  # one data pack
    backup(repo_path, src)
    for j in range(2, 10):
        os.unlink(src / f"f{j}")
    kept = backup(repo_path, src)
    expected = {kept: (src, state(src))}
    forget(open_repo(repo_path), RetentionPolicy(keep_last=1))
    before = pack_bytes(repo_path)

    dry = prune(open_repo(repo_path), now=NOW, repack_above=0.5, dry_run=True)
    assert dry.packs_to_repack >= 1 and not dry.repacked and dry.packs_written == 0
    plain = prune(open_repo(repo_path), now=NOW, dry_run=True)
    assert plain.packs_to_repack == 0 and plain.waste_bytes > 100 * 1024

    marked = prune(open_repo(repo_path), now=NOW, repack_above=0.5)
    assert marked.repacked and marked.packs_written >= 1
    assert marked.packs_marked >= marked.packs_to_repack
    verify(repo_path, expected, tmp_path)
    # A backup between mark and sweep reuses the copies: nothing is stored again.
    repo = open_repo(repo_path)
    again = run_backup(repo, [str(src)], hostname="pc1", workers=2)
    assert again.stats.data_blobs_added == 0
    expected[again.snapshot_id] = (src, state(src))

    swept = prune(open_repo(repo_path), now=LATER, repack_above=0.5)
    assert swept.packs_deleted >= marked.packs_to_repack and swept.packs_spared == 0
    assert swept.packs_to_repack == 0 and swept.waste_bytes == 0
    assert pack_bytes(repo_path) < before / 2
    verify(repo_path, expected, tmp_path)


class GatedStore(LocalStore):
    """Holds the snapshot write until ``release`` is set."""

    reached: threading.Event
    release: threading.Event

    def put(self, key, data):
        if key.startswith("snapshots/"):
            self.reached.set()
            assert self.release.wait(60)
        super().put(key, data)


def test_concurrent_backup_spans_the_mark(repo_path, tmp_path, monkeypatch):
    """A real backup thread: it has stored its packs and index objects but
    not yet its snapshot when the prune marks; it finishes afterwards."""
    src, snaps = history(repo_path, tmp_path, rounds=2)
    forget(open_repo(repo_path), RetentionPolicy(keep_last=1))
    GatedStore.reached, GatedStore.release = threading.Event(), threading.Event()
    repo = Repository.open(GatedStore(repo_path), passphrase=PASSPHRASE)
    src2 = tmp_path / "src2"
    write_files(src2, [f"n{j}" for j in range(4)])
    out = {}
    thread = threading.Thread(target=lambda: out.update(sid=backup(repo_path, src2, repo=repo)))
    thread.start()
    try:
        assert GatedStore.reached.wait(60)
        marked = prune(open_repo(repo_path), now=NOW)  # the backup's packs look unreferenced
    finally:
        GatedStore.release.set()
        thread.join(60)
    assert marked.packs_marked > 0
    swept = prune(open_repo(repo_path), now=LATER)
    assert swept.packs_spared > 0 and swept.packs_deleted > 0
    verify(
        repo_path,
        {out["sid"]: (src2, state(src2)), snaps[-1][0]: (src, snaps[-1][1])},
        tmp_path,
    )


def test_unindexed_packs_of_a_crashed_backup_are_reclaimed(repo_path, tmp_path):
    src, snaps = history(repo_path, tmp_path, rounds=1)
    store = LocalStore(repo_path)
    before = set(store.list("index/")), set(store.list("snapshots/"))
    write_files(src, ["crash"])
    backup(repo_path, src)
    # the crash: packs stored, index object and snapshot never written
    for key in (set(store.list("index/")) - before[0]) | (
        set(store.list("snapshots/")) - before[1]
    ):
        store.delete(key)
    assert not run_check(open_repo(repo_path)).errors
    marked = prune(open_repo(repo_path), now=NOW)
    assert marked.packs_marked > 0
    swept = prune(open_repo(repo_path), now=LATER)
    assert swept.packs_deleted == marked.packs_marked
    verify(repo_path, {snaps[0][0]: (src.parent / "src", snaps[0][1])}, tmp_path)


def test_prune_refuses_when_a_snapshot_is_unreadable(repo_path, tmp_path):
    history(repo_path, tmp_path, rounds=2)
    store = LocalStore(repo_path)
    key = sorted(store.list("snapshots/"))[0]
    path = repo_path / key
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    keys = all_keys(repo_path)
    with pytest.raises(PruneError, match="cannot be read"):
        prune(open_repo(repo_path), now=NOW)
    assert all_keys(repo_path) == keys


CRASHING_SWEEP = textwrap.dedent(
    """
    import sys, time
    from agent.engine.store import LocalStore
    from agent.engine.repository import Repository
    from agent.engine.prune import prune

    real_delete = LocalStore.delete
    def slow_delete(self, key):
        real_delete(self, key)
        print("deleted", key, flush=True)
        time.sleep(0.3)
    LocalStore.delete = slow_delete
    repo = Repository.open(LocalStore(sys.argv[1]), passphrase=sys.argv[2])
    prune(repo)
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("kill_after", [1, 4])
def test_sigkill_mid_sweep_leaves_a_usable_repository(repo_path, tmp_path, kill_after):
    src, snaps = history(repo_path, tmp_path, rounds=3)
    forget(open_repo(repo_path), RetentionPolicy(keep_last=1))
    prune(open_repo(repo_path), now=NOW - DEFAULT_GRACE - dt.timedelta(hours=1))
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_SWEEP, str(repo_path), PASSPHRASE],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )
    try:
        deleted = 0
        for line in proc.stdout:
            assert not line.startswith("done"), "the sweep finished before the kill"
            deleted += line.startswith("deleted")
            if deleted >= kill_after:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(30)
    kept = {snaps[-1][0]: (src, snaps[-1][1])}
    verify(repo_path, kept, tmp_path)
    # the next prune finishes the job
    prune(open_repo(repo_path), now=LATER)
    assert list(LocalStore(repo_path).list("prune/")) == []
    verify(repo_path, kept, tmp_path)


CRASHING_REPACK = textwrap.dedent(
    """
    import sys, time
    from agent.engine.store import LocalStore
    from agent.engine.repository import Repository
    from agent.engine.prune import prune

    real_put = LocalStore.put
    def slow_put(self, key, data):
        real_put(self, key, data)
        print("put", key, flush=True)
        time.sleep(0.3)
    LocalStore.put = slow_put
    repo = Repository.open(LocalStore(sys.argv[1]), passphrase=sys.argv[2])
    prune(repo, repack_above=0.3)
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("kill_after", [1, 2])
def test_sigkill_mid_repack_leaves_a_usable_repository(repo_path, tmp_path, kill_after):
    src = tmp_path / "src"
    write_files(src, [f"f{j}" for j in range(12)], size=20 * 1024)
    backup(repo_path, src)
    for j in range(3, 12):
        os.unlink(src / f"f{j}")
    kept = {backup(repo_path, src): (src, state(src))}
    forget(open_repo(repo_path), RetentionPolicy(keep_last=1))
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_REPACK, str(repo_path), PASSPHRASE],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )
    puts = []
    try:
        for line in proc.stdout:
            assert not line.startswith("done"), "the repack finished before the kill"
            puts.append(line.split()[-1])
            if len(puts) >= kill_after:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(30)
    assert not any(k.startswith("prune/") for k in puts)  # killed before its marker
    verify(repo_path, kept, tmp_path)
    prune(open_repo(repo_path), now=NOW, repack_above=0.3)
    verify(repo_path, kept, tmp_path)
    final = prune(open_repo(repo_path), now=LATER, repack_above=0.3)
    assert final.packs_deleted > 0
    verify(repo_path, kept, tmp_path)
    again = prune(open_repo(repo_path), now=LATER + DEFAULT_GRACE * 2, repack_above=0.3)
    assert again.packs_to_repack == 0


def test_cli_forget_and_prune(repo_path, tmp_path):
    src, snaps = history(repo_path, tmp_path, rounds=2)
    env = cli_env()
    out = run_cli(
        "forget", "--repo", repo_path, "--keep-last", "1", "--dry-run", "--json", env=env, check=0
    )
    doc = json.loads(out.stdout)
    assert len(doc["forget"]["forget"]) == 1 and len(doc["forget"]["keep"]) == 1
    out = run_cli(
        "forget", "--repo", repo_path, "--keep-within", "30d", "--keep-last", "1", "--prune",
        "--json", env=env, check=0,
    )  # fmt: skip
    doc = json.loads(out.stdout)
    assert doc["prune"]["packs_marked"] == 0  # both within 30 days: nothing forgotten
    run_cli("forget", "--repo", repo_path, "--keep-last", "1", "-q", env=env, check=0)
    out = run_cli("prune", "--repo", repo_path, "--json", env=env, check=0)
    assert json.loads(out.stdout)["packs_marked"] > 0
    out = run_cli("prune", "--repo", repo_path, "--repack-above", "0.5", "--dry-run", "--json",
                  env=env, check=0)  # fmt: skip
    assert json.loads(out.stdout)["dry_run"] is True
    out = run_cli("prune", "--repo", repo_path, "--grace", "0h", env=env, check=0)
    assert b"deleted" in out.stdout
    out = run_cli("forget", "--repo", repo_path, "--keep-within", "3x", env=env, check=1)
    assert out.stderr.count(b"\n") == 1 and b"invalid duration" in out.stderr
    verify(repo_path, {snaps[-1][0]: (src, snaps[-1][1])}, tmp_path)


# --- property: any interleaving of backups, forgets and prunes loses nothing ---------------
POOL = [bytes([i]) * 16 + os.urandom(16) for i in range(4)]  # 4 contents, reused
# (odd prune hours also repack packs more than 30 % unreferenced)


def ops_strategy():
    from hypothesis import strategies as st

    backup_op = st.tuples(
        st.just("backup"),
        st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=3),
    )
    across = st.tuples(
        st.just("backup-across-prune"),
        st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=3),
        st.integers(0, 80),
    )
    forget_op = st.tuples(st.just("forget"), st.integers(1, 3))
    prune_op = st.tuples(st.just("prune"), st.integers(0, 80))  # hours to advance first
    return st.lists(st.one_of(backup_op, across, forget_op, prune_op), min_size=1, max_size=8)


def test_random_histories_stay_intact(tmp_path_factory):
    from hypothesis import HealthCheck, example, given, settings

    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ops_strategy())
    # a backup that starts after a marking and ends after its sweep
    @example([("backup", [0]), ("backup", [1]), ("forget", 1), ("prune", 0),
              ("backup-across-prune", [0], 60)])  # fmt: skip
    # a backup that starts before a marking and ends before its sweep
    @example([("backup", [0]), ("backup", [1]), ("forget", 1),
              ("backup-across-prune", [0], 0), ("prune", 60)])  # fmt: skip
    def run(ops):
        base = tmp_path_factory.mktemp("hist")
        make_repo(base / "repo")
        path, src = base / "repo", base / "src"
        clock = NOW
        expected: dict = {}

        def do_backup(contents, repo=None):
            os.makedirs(src, exist_ok=True)
            for name in os.listdir(src):
                os.unlink(os.path.join(src, name))
            for i, c in enumerate(contents):
                with open(os.path.join(src, f"f{i}"), "wb") as f:
                    f.write(POOL[c] * 3000)
            sid = backup(path, src, repo=repo)
            expected[sid] = state(src)

        for op in ops:
            if op[0] == "backup":
                do_backup(op[1])
            elif op[0] == "backup-across-prune":
                running = open_repo(path)
                clock += dt.timedelta(hours=op[2])
                prune(open_repo(path), now=clock)
                do_backup(op[1], repo=running)
            elif op[0] == "forget":
                result, _ = forget(open_repo(path), RetentionPolicy(keep_last=op[1]))
                for s in result.forget:
                    expected.pop(s.id)
            else:
                clock += dt.timedelta(hours=op[1])
                prune(open_repo(path), now=clock, repack_above=0.3 if op[1] % 2 else None)
        # a last sweep of everything still marked
        prune(open_repo(path), now=clock + DEFAULT_GRACE * 2)
        prune(open_repo(path), now=clock + DEFAULT_GRACE * 4)
        verify(path, {sid: (src, disk) for sid, disk in expected.items()}, base)

    run()


def test_duplicate_packs_of_concurrent_backups_are_reclaimed(repo_path, tmp_path):
    """Two backups of the same data run at the same time: each loaded the
    index before the other stored anything, so every blob is stored twice.
    Prune accounts for blobs by location: the copies the index does not use
    are reclaimed; check calls them duplicates, not unindexed packs."""
    src = tmp_path / "src"
    write_files(src, [f"f{j}" for j in range(6)])
    first, second = open_repo(repo_path), open_repo(repo_path)  # both start: index loaded
    out: dict[str, str] = {}
    threads = [
        threading.Thread(target=lambda n=n, r=r: out.update({n: backup(repo_path, src, repo=r)}))
        for n, r in (("a", first), ("b", second))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    expected = {sid: (src, state(src)) for sid in out.values()}
    assert len(expected) == 2
    before = pack_bytes(repo_path)

    report = run_check(open_repo(repo_path))
    assert report.ok
    assert not any("not in any index" in i for i in report.info), report.info
    dup = [i for i in report.info if "stored in 2 packs; the index uses" in i]
    assert dup, report.info

    marked = prune(open_repo(repo_path), now=NOW)
    assert marked.packs_marked > 0 and marked.bytes_marked > 0.4 * before
    swept = prune(open_repo(repo_path), now=LATER)
    assert swept.packs_deleted == marked.packs_marked and swept.packs_spared == 0
    after = pack_bytes(repo_path)
    print(f"duplicate packs: {before} bytes before, {after} after ({after / before:.0%})")
    assert after < 0.6 * before
    verify(repo_path, expected, tmp_path)
    clean = run_check(open_repo(repo_path), read_data=True)
    assert clean.ok and not any("stored in" in i for i in clean.info), clean.info


def test_a_spared_unindexed_pack_is_indexed_and_not_marked_again(repo_path, tmp_path):
    """A referenced data pack no index object names (an index object lost)
    is marked, then spared and re-indexed by the sweep; the same run must
    judge it as indexed and used, not mark it again."""
    src, snaps = history(repo_path, tmp_path, rounds=1)
    repo = open_repo(repo_path)
    keys = sorted(repo.store.list("index/"))
    by_object, _damaged = load_index_objects(repo, keys)
    packs = {p: e for doc in by_object.values() for p, e in doc.items()}
    lost = next(p for p, entries in packs.items() if entries[0].type == DATA)
    repo.save_index({p: e for p, e in packs.items() if p != lost})
    for key in keys:
        repo.store.delete(key)

    marked = prune(open_repo(repo_path), now=NOW)
    assert marked.packs_marked == 1
    swept = prune(open_repo(repo_path), now=LATER)
    assert swept.packs_spared == 1 and swept.packs_deleted == 0
    assert swept.packs_marked == 0 and not swept.marker
    verify(repo_path, {snaps[0][0]: (src, snaps[0][1])}, tmp_path)


def test_the_plan_decides_without_writing_and_execute_does_exactly_it(repo_path, tmp_path):
    """plan_prune reads only; the plan names what execute then does, and a
    dry run reports the plan (no ``if not dry_run`` in the decision)."""
    src, snaps = history(repo_path, tmp_path)
    forget(open_repo(repo_path), RetentionPolicy(keep_last=1))
    keys = all_keys(repo_path)
    plan = plan_prune(open_repo(repo_path), now=NOW)
    again = plan_prune(open_repo(repo_path), now=NOW)
    assert all_keys(repo_path) == keys  # planning wrote nothing
    assert plan.mark and plan.mark == again.mark and not plan.compact and not plan.repack
    assert plan.report.packs_marked == len(plan.mark) and plan.report.dry_run
    assert prune(open_repo(repo_path), now=NOW, dry_run=True) == plan.report
    assert any(line.startswith(f"mark {len(plan.mark)} pack(s)") for line in plan.describe())
    done = plan.execute()
    assert not done.dry_run and done.marker and done.packs_marked == len(plan.mark)
    with pytest.raises(ValueError, match="executed already"):
        plan.execute()
    [marker_key] = all_keys(repo_path) - keys
    assert marker_key == done.marker

    sweep = plan_prune(open_repo(repo_path), now=LATER)
    assert sweep.compact and sorted(sweep.packs_deleted) == sorted(plan.mark)
    assert sweep.markers_swept == [done.marker] and sweep.report.packs_deleted == len(plan.mark)
    assert all_keys(repo_path) == keys | {marker_key}
    swept = sweep.execute()
    assert swept.packs_deleted == len(plan.mark) and swept.index_objects_written == 1
    gone = (keys | {marker_key}) - all_keys(repo_path)
    assert {pack_key(p) for p in plan.mark} | {marker_key} <= gone
    verify(repo_path, {snaps[-1][0]: (src, snaps[-1][1])}, tmp_path)


def test_a_plan_for_assumed_forgets_cannot_be_executed(repo_path, tmp_path):
    _src, snaps = history(repo_path, tmp_path, rounds=2)
    plan = plan_prune(open_repo(repo_path), now=NOW, assume_forgotten={snaps[0][0]})
    assert plan.mark  # the first snapshot's packs, as if it were forgotten
    with pytest.raises(ValueError, match="dry runs only"):
        plan.execute()
    with pytest.raises(ValueError, match="dry runs only"):
        prune(open_repo(repo_path), now=NOW, assume_forgotten={snaps[0][0]})
