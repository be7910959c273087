"""Promotion of offline spool uploads (console/storage/spool.py) against moto
S3: valid slots land in the repository in order (data, index, snapshots),
nothing existing is ever overwritten, hostile targets are refused and
deleted, abandoned and revoked spools are cleaned, runs are idempotent, and
maintenance holds prune markers back while a spool lease is valid."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets

import pytest
from django.utils import timezone

from agent.engine.backup import run_backup
from agent.engine.check import run_check
from agent.engine.prune import DEFAULT_GRACE
from agent.engine.repository import Repository
from agent.engine.restore import run_restore
from agent.engine.store import ObjectStore
from agent.engine.store.s3 import S3Store
from agent.rpc import agent_pb2 as pb
from console.audit.models import AuditEvent
from console.audit.services import SYSTEM
from console.core.keys import org_key
from console.fleet import services as fleet
from console.fleet.models import Device
from console.gateway.services import reports
from console.jobs.models import JobKind, JobRun
from console.storage import maintenance, spool, targets, tasks
from tests.console import test_maintenance as maint

# The S3-backed device repository of the maintenance tests (fixtures and helpers).
s3_settings, device = maint.s3_settings, maint.device
back_up, open_repo = maint.back_up, maint.open_repo

HEX = "ab" * 32


def admin(dev):
    return targets.admin_store(targets.target(), str(dev.pk))


def put_slot(dev, key, body: bytes, *, size=None, target: bytes | None = None) -> str:
    """One spool slot as the agent writes it: the object, then the target."""
    spool_id = secrets.token_hex(16)
    doc = {"v": 1, "key": key, "size": len(body) if size is None else size}
    with admin(dev) as store:
        if body is not None:
            store.put(f"spool/{spool_id}/object", body)
        store.put(
            f"spool/{spool_id}/target", json.dumps(doc).encode() if target is None else target
        )
    return spool_id


def spooled(dev) -> list[str]:
    with admin(dev) as store:
        return sorted(store.list("spool/"))


class SpoolingStore(ObjectStore):
    """What an offline agent does: data, index objects and snapshots go to
    spool slots; reads see the repository as it was at lease time."""

    def __init__(self, inner):
        self.inner = inner

    def put(self, key, data):
        if key.split("/", 1)[0] not in ("data", "index", "snapshots"):
            return self.inner.put(key, data)
        spool_id = secrets.token_hex(16)
        self.inner.put(f"spool/{spool_id}/object", data)
        doc = {"v": 1, "key": key, "size": len(data)}
        self.inner.put(f"spool/{spool_id}/target", json.dumps(doc).encode())

    def get(self, key):
        return self.inner.get(key)

    def get_range(self, key, offset, length):
        return self.inner.get_range(key, offset, length)

    def exists(self, key):
        return self.inner.exists(key)

    def list(self, prefix=""):
        return self.inner.list(prefix)

    def delete(self, key):
        raise AssertionError("an agent cannot delete")

    def size(self, key):
        return self.inner.size(key)

    def close(self):
        self.inner.close()


def test_offline_backup_is_promoted_in_order_then_restorable(device, tmp_path, monkeypatch):
    src = tmp_path / "src"
    back_up(device, src, "online")  # the repository the agent saw when it leased
    (src / "offline").write_bytes(os.urandom(300 * 1024))
    offline = Repository.open(SpoolingStore(admin(device)), key=org_key())
    sid = run_backup(offline, [str(src)], hostname="pc-001", workers=2).snapshot_id
    assert sid not in {s.id for s in open_repo(device).snapshots()}
    assert len(spooled(device)) >= 6  # >= one pack, one index, one snapshot: two parts each

    copied: list[str] = []
    real_copy = S3Store.copy
    monkeypatch.setattr(
        S3Store, "copy", lambda store, s, d: (copied.append(d), real_copy(store, s, d))
    )
    report = spool.promote(str(device.pk))
    assert report.refused == [] and report.promoted == len(copied) >= 3
    kinds = [k.split("/", 1)[0] for k in copied]
    assert kinds == sorted(kinds, key=["data", "index", "snapshots"].index)
    assert spooled(device) == []

    repo = open_repo(device)
    assert sid in {s.id for s in repo.snapshots()}
    assert run_check(repo, read_data=True).ok
    run_restore(repo, sid, str(tmp_path / "restore"))
    restored = tmp_path / "restore" / str(src).lstrip("/") / "offline"
    assert restored.read_bytes() == (src / "offline").read_bytes()

    again = spool.promote(str(device.pk))  # idempotent: nothing left to do
    assert again.to_dict() == spool.PromoteReport().to_dict()


def test_an_existing_object_is_never_overwritten(device, tmp_path):
    back_up(device, tmp_path / "src", "file")
    with admin(device) as store:
        key = sorted(store.list("index/"))[0]
        before = store.get(key)
    put_slot(device, key, b"x" * len(before))  # same size: a duplicate, dropped
    put_slot(device, key, b"y" * (len(before) + 1))  # another size: refused
    report = spool.promote(str(device.pk))
    assert report.promoted == 0 and report.duplicates == 1
    assert [r for _i, r in report.refused] == [f"{key} exists with another size: not overwritten"]
    with admin(device) as store:
        assert store.get(key) == before
    assert spooled(device) == []


def test_hostile_targets_are_refused_and_deleted(device, db):
    other = fleet.enroll_device(
        fleet.create_enrollment_token(SYSTEM, "o", max_uses=1)[1], hostname="pc-002", os="linux"
    )
    with admin(device) as store:
        before = sorted(k for k in store.list("") if not k.startswith("spool/"))
    body = b"evil bytes"
    hostile = [
        f"../{other.pk}/data/{HEX[:2]}/{HEX}",
        f"data/../../{other.pk}/config",
        "config",
        "keys/x",
        f"prune/{HEX}",
        f"/data/{HEX[:2]}/{HEX}",
        f"data/00/{HEX}",  # the directory is not the id's first byte
        f"data/{HEX[:2]}/{HEX}\n",
        f"index/{HEX.upper()}",
        f"snapshots/{HEX}/x",
        f"spool/{HEX}",
        None,
    ]
    for key in hostile:
        put_slot(device, key, body)
    put_slot(device, f"index/{HEX}", body, size=len(body) + 1)  # size mismatch
    put_slot(device, f"index/{HEX}", body, size="10")
    put_slot(device, f"index/{HEX}", body, target=b"not json")
    put_slot(
        device,
        f"index/{HEX}",
        body,
        target=b'{"v": 2, "key": "index/%s", "size": 10}' % HEX.encode(),
    )
    pad = json.dumps({"v": 1, "key": f"index/{HEX}", "size": len(body), "pad": " " * 5000})
    put_slot(device, f"index/{HEX}", body, target=pad.encode())  # > 4096 bytes
    lone = secrets.token_hex(16)
    with admin(device) as store:
        store.put(f"spool/{lone}/target", b'{"v": 1, "key": "index/%s", "size": 1}' % HEX.encode())

    report = spool.promote(str(device.pk))
    assert report.promoted == report.duplicates == 0
    assert len(report.refused) == len(hostile) + 6
    reasons = dict(report.refused)
    assert reasons[lone] == "target without object"
    assert spooled(device) == []
    with admin(device) as store:
        assert sorted(store.list("")) == before
        assert not any(k.startswith(f"acme/{other.pk}") for k in store.list(""))
    with targets.admin_store(targets.target(), str(other.pk)) as store:
        assert list(store.list("")) == []
    event = AuditEvent.objects.get(action="device.spool_refused")
    assert event.target_id == str(device.pk) and event.after["count"] == len(report.refused)


def test_abandoned_objects_are_deleted_only_once_old(device):
    spool_id = secrets.token_hex(16)
    with admin(device) as store:
        store.put(f"spool/{spool_id}/object", b"half an upload")
    now = timezone.now()
    assert spool.promote(str(device.pk), now=now).waiting == 1
    lease_end = now + dt.timedelta(days=7)
    assert spool.promote(str(device.pk), now=lease_end).waiting == 1  # its target may still come
    late = lease_end + dt.timedelta(days=1, minutes=1)
    assert spool.promote(str(device.pk), now=late).abandoned == 1
    assert spooled(device) == []


def test_a_revoked_device_promotes_nothing(device):
    key = f"index/{HEX}"
    put_slot(device, key, b"bytes")
    fleet.revoke_device(SYSTEM, device)
    report = spool.promote(str(device.pk))
    assert report.promoted == 0 and report.abandoned == 1
    assert spooled(device) == []
    with admin(device) as store:
        assert not store.exists(key)


def test_a_run_stopped_after_the_copy_is_finished_by_the_next(device, monkeypatch):
    key = f"snapshots/{HEX}"
    put_slot(device, key, b"snapshot bytes")

    def crash(*_args):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(spool, "_delete", crash)
    with pytest.raises(RuntimeError):
        spool.promote(str(device.pk))
    monkeypatch.undo()
    report = spool.promote(str(device.pk))
    assert report.duplicates == 1 and report.refused == []
    assert spooled(device) == []
    with admin(device) as store:
        assert store.get(key) == b"snapshot bytes"

    # Stopped between deleting the object and its target: cleared, not refused.
    put_slot(device, f"index/{HEX}", b"index bytes")
    real_delete = S3Store.delete
    monkeypatch.setattr(
        S3Store, "delete", lambda store, k: k.endswith("/target") or real_delete(store, k)
    )
    assert spool.promote(str(device.pk)).promoted == 1
    monkeypatch.undo()
    assert len(spooled(device)) == 1  # the lone target
    report = spool.promote(str(device.pk))
    assert report.duplicates == 1 and report.refused == [] and spooled(device) == []


def test_maintenance_holds_markers_back_while_a_spool_lease_is_valid(device, tmp_path):
    src = tmp_path / "src"
    back_up(device, src, "first")
    back_up(device, src, "second")
    now = timezone.now()
    Device.objects.filter(pk=device.pk).update(
        spool_lease_issued_at=now - dt.timedelta(minutes=1),
        spool_lease_expires_at=now + dt.timedelta(days=7),
    )
    put_slot(device, f"index/{HEX}", b"x")  # promoted before the prune: in its stats
    marked = maintenance.maintain_device(str(device.pk))
    assert marked.stats["spool"]["refused"] == [] and marked.stats["spool"]["promoted"] == 1
    assert marked.stats["prune"]["packs_marked"] > 0

    later = now + DEFAULT_GRACE + dt.timedelta(minutes=1)  # the lease is still valid then
    held = maintenance.maintain_device(str(device.pk), now=later)
    assert held.stats["prune"]["packs_deleted"] == 0
    assert held.stats["prune"]["markers_pending"] == 1

    Device.objects.filter(pk=device.pk).update(spool_lease_expires_at=later - dt.timedelta(hours=1))
    swept = maintenance.maintain_device(str(device.pk), now=later)
    assert swept.stats["prune"]["packs_deleted"] == marked.stats["prune"]["packs_marked"]


def test_a_backup_result_with_spooled_objects_queues_promotion(
    device, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(tasks.promote_spool, "delay", queued.append)

    def result(job_id: str, stats: dict):
        return pb.Report(
            idempotency_key=job_id,
            result=pb.JobResult(
                job_id=job_id, kind="backup", state="succeeded", stats_json=json.dumps(stats)
            ),
        )

    with django_capture_on_commit_callbacks(execute=True):
        reports.ingest(str(device.pk), result("j1", {"spooled_objects": 0}))
    assert queued == []
    with django_capture_on_commit_callbacks(execute=True):
        reports.ingest(str(device.pk), result("j2", {"spooled_objects": 3}))
    assert queued == [str(device.pk)]
    assert JobRun.objects.filter(device=device, kind=JobKind.BACKUP).count() == 2

    # The broker being down never fails the ingest.
    monkeypatch.setattr(tasks.promote_spool, "delay", lambda *_: 1 / 0)
    with django_capture_on_commit_callbacks(execute=True):
        reports.ingest(str(device.pk), result("j3", {"spooled_objects": 1}))

    put_slot(device, f"index/{HEX}", b"x")
    assert tasks.promote_spool(str(device.pk))["promoted"] == 1
