"""Server-side maintenance (console/storage/maintenance.py) against moto S3:
the console opens a device repository with its own credentials and the
organisation key, applies the device's policy's retention, prunes, and
records a JobRun of kind prune."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from agent.engine.backup import run_backup
from agent.engine.check import run_check
from agent.engine.prune import DEFAULT_GRACE
from agent.engine.repository import Repository
from agent.engine.restore import run_restore
from console.audit.models import AuditEvent
from console.audit.services import SYSTEM
from console.core.keys import org_key
from console.fleet import services as fleet
from console.jobs.models import JobKind, JobRun, JobState, Snapshot
from console.policies import services as policies
from console.policies import spec as specs
from console.storage import maintenance, targets, tasks
from console.storage.targets import bootstrap_repository


@pytest.fixture
def s3_settings(settings, s3_server, s3_bucket, tmp_path):
    settings.S3_ENDPOINT = s3_server.endpoint
    settings.S3_BUCKET = s3_bucket
    settings.S3_ACCESS_KEY = s3_server.access_key
    settings.S3_SECRET_KEY = s3_server.secret_key
    settings.CAIRN_ORG = "acme"
    settings.ORG_KEY_FILE = tmp_path / "keys" / "org.key"
    return settings


@pytest.fixture
def device(db, s3_settings):
    group = fleet.create_group(SYSTEM, "Finance")
    _, token = fleet.create_enrollment_token(SYSTEM, "t", group, max_uses=5)
    dev = fleet.enroll_device(token, hostname="pc-001", os="linux")
    spec = specs.default_spec()
    spec["retention"] = {k: 0 for k in spec["retention"]} | {"keep_last": 1}
    policy = policies.create_policy(SYSTEM, "Keep one", spec)
    policies.assign_policy(SYSTEM, policy, group, 100)
    bootstrap_repository(targets.target(), str(dev.pk), os.urandom(32))
    return dev


def open_repo(dev) -> Repository:
    return Repository.open(targets.admin_store(targets.target(), str(dev.pk)), key=org_key())


def back_up(dev, src, name) -> str:
    src.mkdir(exist_ok=True)
    for old in src.iterdir():
        old.unlink()
    (src / name).write_bytes(os.urandom(200 * 1024))
    sid = run_backup(open_repo(dev), [str(src)], hostname="pc-001", workers=2).snapshot_id
    Snapshot.objects.create(device=dev, snapshot_id=sid, paths=[str(src)])
    return sid


def test_maintenance_forgets_prunes_and_records_a_job_run(device, tmp_path):
    src = tmp_path / "src"
    old = back_up(device, src, "first")
    new = back_up(device, src, "second")
    content = (src / "second").read_bytes()

    dry = maintenance.maintain_device(str(device.pk), dry_run=True)
    assert dry.state == JobState.SUCCEEDED, dry.error
    assert dry.stats["forget"]["forgotten_ids"] == [old]
    assert dry.stats["prune"]["packs_marked"] > 0 and dry.stats["prune"]["dry_run"]
    assert {s.id for s in open_repo(device).snapshots()} == {old, new}

    run = maintenance.maintain_device(str(device.pk))
    assert run.kind == JobKind.PRUNE and run.state == JobState.SUCCEEDED, run.error
    assert run.stats["forget"]["forgotten"] == 1
    assert run.stats["prune"]["packs_marked"] > 0 and run.stats["prune"]["packs_deleted"] == 0
    assert run.policy_revision is not None and run.revision_hash
    # the repository's size is measured and stored on the device (issue 17)
    store = targets.admin_store(targets.target(), str(device.pk))
    size = sum(store.size(k) for k in store.list(""))
    assert run.stats["repository_bytes"] == size > 200 * 1024
    device.refresh_from_db()
    assert device.storage_bytes == size
    event = AuditEvent.objects.get(action="device.forget_snapshots")
    assert event.target_id == str(device.pk) and event.after["snapshots"] == [old]
    assert list(Snapshot.objects.filter(device=device).values_list("snapshot_id", flat=True)) == [
        new
    ]

    later = dt.datetime.now(dt.UTC) + DEFAULT_GRACE + dt.timedelta(minutes=1)
    # A backup the agent reported running since before the marking holds the sweep back.
    backup_run = JobRun.objects.create(
        device=device,
        kind=JobKind.BACKUP,
        state=JobState.RUNNING,
        started_at=run.started_at - dt.timedelta(minutes=30),
    )
    held = maintenance.maintain_device(str(device.pk), now=later)
    assert held.stats["prune"]["packs_deleted"] == 0
    assert held.stats["prune"]["markers_pending"] == 1
    backup_run.state = JobState.SUCCEEDED
    backup_run.save()
    swept = maintenance.maintain_device(str(device.pk), now=later)
    assert swept.state == JobState.SUCCEEDED, swept.error
    assert swept.stats["prune"]["packs_deleted"] == run.stats["prune"]["packs_marked"]
    assert swept.stats["prune"]["bytes_deleted"] > 200 * 1024

    repo = open_repo(device)
    assert [s.id for s in repo.snapshots()] == [new]
    assert run_check(repo, read_data=True).ok
    run_restore(repo, new, str(tmp_path / "restore"))
    assert (tmp_path / "restore" / str(src).lstrip("/") / "second").read_bytes() == content
    assert JobRun.objects.filter(device=device, kind=JobKind.PRUNE).count() == 4


def test_failure_is_recorded_and_overlapping_runs_are_skipped(device, s3_settings, tmp_path):
    s3_settings.ORG_KEY_FILE = tmp_path / "other.key"  # the wrong organisation key
    run = maintenance.maintain_device(str(device.pk))
    assert run.state == JobState.FAILED and "\n" not in run.error and run.error

    JobRun.objects.create(device=device, kind=JobKind.PRUNE, state=JobState.RUNNING)
    assert maintenance.maintain_device(str(device.pk)) is None


def test_beat_task_queues_every_device(device, monkeypatch, settings):
    entry = settings.CELERY_BEAT_SCHEDULE["maintain-repositories"]
    assert entry["task"] == tasks.maintain_all.name and entry["schedule"] == 86400.0
    queued = []
    monkeypatch.setattr(tasks.maintain_device, "delay", queued.append)
    assert tasks.maintain_all() == 1
    assert queued == [str(device.pk)]
