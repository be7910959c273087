"""Jobs on the real engine: snapshot warnings (taken and released), the
policy's CPU ceiling, verify, and the scheduler's pause check."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from agent import power
from agent.daemon import daemon as daemon_mod
from agent.daemon import jobs
from agent.daemon.repo import init_repository
from agent.engine.errors import BackupCancelled
from agent.engine.store import LocalStore
from agent.snapshots import SnapshotProvider, SnapshotView, chooser
from agent.snapshots.base import YES
from agent.throttle import CpuCeiling


class FakeProvider(SnapshotProvider):
    """A "snapshot" that is a copy of the source taken at open; it warns
    once when taken and once when released."""

    name = "fake"

    def __init__(self, src, frozen):
        super().__init__(None)
        self.src, self.frozen = str(src), str(frozen)
        self.released = 0

    def available(self, paths):
        return YES

    @contextmanager
    def open(self, paths):
        shutil.copytree(self.src, self.frozen)
        view = SnapshotView(self.name, {self.src: self.frozen}, warnings=["fake: taken"])
        try:
            yield view
        finally:
            self.released += 1
            view.warnings.append("fake: release was slow")


@pytest.fixture
def repo(tmp_path):
    return init_repository(
        LocalStore(tmp_path / "repo"), org_key=os.urandom(32), device_key=os.urandom(32)
    )


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "Documents"
    src.mkdir()
    (src / "a.txt").write_text("as frozen\n")
    return src


def policy_for(src, **extra):
    return {"sources": {jobs.os_name(): [str(src)]}, "excludes": [], **extra}


@pytest.fixture
def provider(monkeypatch, tmp_path, source):
    fake = FakeProvider(source, tmp_path / "frozen")
    monkeypatch.setattr(chooser, "default_providers", lambda state_dir: [fake])
    return fake


def test_backup_reads_through_the_snapshot_and_keeps_its_release_warnings(
    repo, source, provider, monkeypatch
):
    # The live file changes after the snapshot was taken: the backup must
    # store the frozen copy (it read through pit.translate).
    real_backup = jobs.engine_backup.run_backup

    def backup_after_a_write(*args, **kwargs):
        (source / "a.txt").write_text("changed live\n")
        return real_backup(*args, **kwargs)

    monkeypatch.setattr(jobs.engine_backup, "run_backup", backup_after_a_write)
    ctx = jobs.JobContext.new("backup", "manual")
    outcome = jobs.run_backup(ctx, repo, policy_for(source, open_files="required"))

    assert outcome.state == "succeeded", outcome
    assert provider.released == 1
    # Both the warning from taking the snapshot and the one from releasing it.
    assert outcome.warnings == ["fake: taken", "fake: release was slow"]
    assert outcome.stats["total_files"] == 1
    target = source.parent / "restored"
    args = {"snapshot_id": outcome.snapshot_id, "target": str(target)}
    restored = jobs.run_restore(jobs.JobContext.new("restore", "manual", args=args), repo)
    assert restored.state == "succeeded", restored
    [copy] = target.rglob("a.txt")
    assert copy.read_text() == "as frozen\n"


def test_a_cancelled_backup_still_reports_the_release_warnings(repo, source, provider, monkeypatch):
    def cancelled(repo, paths, options):
        options.cancel.set()
        raise BackupCancelled("cancelled")

    monkeypatch.setattr(jobs.engine_backup, "run_backup", cancelled)
    outcome = jobs.run_backup(
        jobs.JobContext.new("backup", "manual"), repo, policy_for(source, open_files="preferred")
    )
    assert outcome.state == "cancelled"
    assert provider.released == 1
    assert outcome.warnings == ["fake: taken", "fake: release was slow"]


def test_required_mode_without_a_snapshot_fails_before_reading(repo, source, monkeypatch):
    monkeypatch.setattr(chooser, "default_providers", lambda state_dir: [])
    monkeypatch.setattr(
        jobs.engine_backup, "run_backup", lambda *a, **k: pytest.fail("must not read")
    )
    outcome = jobs.run_backup(
        jobs.JobContext.new("backup", "manual"), repo, policy_for(source, open_files="required")
    )
    assert outcome.state == "failed"
    assert outcome.error.startswith("no point-in-time snapshot: ")


class RecordingCeiling(CpuCeiling):
    made: list[RecordingCeiling] = []

    def __init__(self, percent, cpus=None):
        super().__init__(percent, cpus)
        self.percent, self.paces = percent, 0
        RecordingCeiling.made.append(self)

    def pace(self, cancel=None):
        self.paces += 1
        super().pace(cancel)


@pytest.fixture
def ceilings(monkeypatch):
    RecordingCeiling.made = []
    monkeypatch.setattr(jobs, "CpuCeiling", RecordingCeiling)
    return RecordingCeiling.made


def test_the_policys_cpu_ceiling_paces_the_backup(repo, source, ceilings):
    ctx = jobs.JobContext.new("backup", "manual")
    policy = policy_for(source, open_files="off", limits={"cpu_percent": 60})
    outcome = jobs.run_backup(ctx, repo, policy)
    assert outcome.state == "succeeded", outcome
    [ceiling] = ceilings
    assert ceiling.percent == 60
    assert ceiling.paces >= 1  # the engine's progress callback went through it
    # ... and still reached the job's progress (only the adapter sets current_path).
    assert "current_path" in ctx.progress


@pytest.mark.parametrize("limits", [{"cpu_percent": 0}, {}, None])
def test_no_cpu_ceiling_when_the_policy_sets_none(repo, source, ceilings, limits):
    outcome = jobs.run_backup(
        jobs.JobContext.new("backup", "manual"),
        repo,
        policy_for(source, open_files="off", limits=limits),
    )
    assert outcome.state == "succeeded", outcome
    assert ceilings == []


def test_verify_reports_a_healthy_repository(repo, source):
    jobs.run_backup(jobs.JobContext.new("backup", "manual"), repo, policy_for(source))
    outcome = jobs.run_verify(
        jobs.JobContext.new("verify", "manual", args={"read_data": True}), repo
    )
    assert outcome.state == "succeeded", outcome
    assert outcome.error == "" and outcome.warnings == []


def test_pause_check_passes_the_policys_flags_to_power(monkeypatch):
    calls = []

    def pause_reason(*, pause_on_battery, pause_on_metered):
        calls.append((pause_on_battery, pause_on_metered))
        return "paused: on battery (40 %)" if pause_on_battery else None

    monkeypatch.setattr(power, "pause_reason", pause_reason)

    def check(limits):
        fake = SimpleNamespace(state=SimpleNamespace(policy={"limits": limits}))
        return daemon_mod.Daemon._pause_check(fake)

    assert check({"pause_on_battery": True, "pause_on_metered": False}) == (
        "paused: on battery (40 %)"
    )
    # An unset flag takes the policy contract's default (pause on battery: on).
    assert check({"pause_on_battery": False, "pause_on_metered": True}) == ""
    assert calls == [(True, False), (False, True)]
