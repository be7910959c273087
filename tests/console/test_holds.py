"""Legal holds and offboarding (console/holds) against moto S3 with real
repositories: retention never forgets held snapshots, offboarding deletes a
revoked device's data after CAIRN_REVOKED_RETENTION_DAYS unless held, holds
are placed, released, listed and exported through the API and audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os

import pytest
from django.utils import timezone

from agent.engine.backup import run_backup
from agent.engine.repository import Repository
from console.audit.models import AuditEvent
from console.audit.services import SYSTEM, Actor
from console.core.keys import org_key
from console.fleet import services as fleet
from console.fleet.models import Device
from console.holds import offboarding, services, tasks
from console.holds.models import LegalHold, Offboarding, Scope
from console.jobs.models import JobState, Snapshot
from console.policies import services as policies
from console.policies import spec as specs
from console.storage import maintenance, targets
from console.storage.targets import bootstrap_repository


@pytest.fixture
def s3_settings(settings, s3_server, s3_bucket, tmp_path):
    settings.S3_ENDPOINT = s3_server.endpoint
    settings.S3_BUCKET = s3_bucket
    settings.S3_ACCESS_KEY = s3_server.access_key
    settings.S3_SECRET_KEY = s3_server.secret_key
    settings.CAIRN_ORG = "acme"
    settings.ORG_KEY_FILE = tmp_path / "keys" / "org.key"
    settings.CAIRN_REVOKED_RETENTION_DAYS = 90
    return settings


@pytest.fixture
def enroll(db, s3_settings):
    group = fleet.create_group(SYSTEM, "Finance")
    _, token = fleet.create_enrollment_token(SYSTEM, "t", group, max_uses=10)
    spec = specs.default_spec()
    spec["retention"] = {k: 0 for k in spec["retention"]} | {"keep_last": 1}
    policies.assign_policy(SYSTEM, policies.create_policy(SYSTEM, "Keep one", spec), group, 100)

    def make(hostname: str, owner: str = "") -> Device:
        dev = fleet.enroll_device(token, hostname=hostname, os="linux")
        Device.objects.filter(pk=dev.pk).update(owner=owner)
        dev.refresh_from_db()
        bootstrap_repository(targets.target(), str(dev.pk), os.urandom(32))
        return dev

    return make


def store_of(dev):
    return targets.admin_store(targets.target(), str(dev.pk))


def back_up(dev, src, name) -> str:
    src.mkdir(exist_ok=True)
    for old in src.iterdir():
        old.unlink()
    (src / name).write_bytes(os.urandom(64 * 1024))
    repo = Repository.open(store_of(dev), key=org_key())
    sid = run_backup(repo, [str(src)], hostname=dev.hostname, workers=2).snapshot_id
    Snapshot.objects.create(device=dev, snapshot_id=sid, paths=[str(src)])
    return sid


def snapshot_ids(dev) -> set[str]:
    return {s.id for s in Repository.open(store_of(dev), key=org_key()).snapshots()}


def revoke(dev, days_ago: float) -> None:
    fleet.revoke_device(SYSTEM, dev)
    Device.objects.filter(pk=dev.pk).update(revoked_at=timezone.now() - dt.timedelta(days=days_ago))


def test_retention_keeps_held_snapshots_and_forgets_them_once_released(enroll, tmp_path, users):
    admin = Actor(user=users["admin"])
    dev = enroll("pc-001", owner="alice")
    src = tmp_path / "src"
    first = back_up(dev, src, "a")
    second = back_up(dev, src, "b")
    third = back_up(dev, src, "c")

    # a hold on one snapshot: retention (keep one) forgets only the other old one
    snap_hold = services.place(
        admin, services.HoldInput(Scope.SNAPSHOT, "Case 7", "litigation", dev, snapshot_id=first)
    )
    run = maintenance.maintain_device(str(dev.pk))
    assert run.state == JobState.SUCCEEDED, run.error
    assert run.stats["held"] == [first]
    assert run.stats["forget"]["forgotten_ids"] == [second]
    assert snapshot_ids(dev) == {first, third}

    # a hold on the user covers every device of that user: nothing is forgotten
    services.release(admin, snap_hold, "case closed")
    user_hold = services.place(admin, services.HoldInput(Scope.USER, "Case 8", "HR", owner="alice"))
    run = maintenance.maintain_device(str(dev.pk))
    assert run.state == JobState.SUCCEEDED and run.stats["held"] == "all"
    assert run.stats["forget"] is None and snapshot_ids(dev) == {first, third}

    services.release(admin, user_hold, "settled")
    run = maintenance.maintain_device(str(dev.pk))
    assert run.stats["held"] == [] and run.stats["forget"]["forgotten_ids"] == [first]
    assert snapshot_ids(dev) == {third}
    actions = list(
        AuditEvent.objects.filter(action__startswith="hold.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["hold.place", "hold.release", "hold.place", "hold.release"]


def test_offboarding_deletes_a_revoked_device_after_retention_unless_held(enroll, tmp_path, users):
    admin = Actor(user=users["admin"])
    held, released, recent, live = (enroll(f"pc-{i}") for i in range(4))
    for dev in (held, released, recent, live):
        back_up(dev, tmp_path / f"src-{dev.hostname}", "file")
    revoke(held, 91)
    revoke(released, 120)
    revoke(recent, 30)
    hold = services.place(admin, services.HoldInput(Scope.DEVICE, "Case 9", "audit", held))
    released_hold = services.place(
        admin, services.HoldInput(Scope.DEVICE, "Case 10", "audit", released)
    )
    # maintenance never runs retention on revoked devices; offboarding is its own pass
    assert set(maintenance.devices_due()) == {str(live.pk)}

    # held (both still held): nothing is deleted
    assert offboarding.offboard_due().offboarded == []
    services.release(admin, released_hold, "no longer needed")

    before = sum(store_of(released).size(k) for k in store_of(released).list(""))
    objects = len(list(store_of(released).list("")))
    result = tasks.offboard_due()
    assert result == {"offboarded": [str(released.pk)], "failed": {}}
    assert list(store_of(released).list("")) == []
    record = Offboarding.objects.get(device=released)
    assert record.deleted_bytes == before > 64 * 1024 and record.deleted_objects == objects
    assert record.deleted_by == "system" and record.hostname == "pc-1"
    assert len(record.snapshots) == 1 and not Snapshot.objects.filter(device=released).exists()
    event = AuditEvent.objects.get(action="device.offboard")
    assert event.target_id == str(released.pk) and event.after["deleted_bytes"] == before

    # the held device, the recently revoked one and the live one are intact
    for dev in (held, recent, live):
        assert len(snapshot_ids(dev)) == 1
    with pytest.raises(offboarding.NotDue, match="legal hold"):
        offboarding.offboard(held)
    with pytest.raises(offboarding.NotDue, match="not revoked"):
        offboarding.offboard(live)
    with pytest.raises(offboarding.NotDue, match="already"):
        offboarding.offboard(released)
    # a second pass does nothing more; once released, the held one goes too
    assert offboarding.offboard_due().offboarded == []
    services.release(admin, hold, "done")
    assert offboarding.offboard_due().offboarded == [str(held.pk)]
    assert list(store_of(held).list("")) == [] and len(snapshot_ids(recent)) == 1


def test_offboarding_is_a_daily_beat_task_with_the_setting(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["offboard-revoked"]
    assert entry == {"task": tasks.offboard_due.name, "schedule": 86400.0}
    settings.CAIRN_REVOKED_RETENTION_DAYS = 7
    assert offboarding.retention_days() == 7


def test_holds_api_place_release_list_export(api, small_fleet):
    dev = small_fleet.devices[0]
    Device.objects.filter(pk=dev.pk).update(hostname="=HYPERLINK(1)", owner="@bob")
    Snapshot.objects.create(device=dev, snapshot_id="ab" * 32)
    admin, auditor = api("admin"), api("auditor")

    bad = [
        ({"scope": "user", "case_name": "C", "reason": "r"}, "owner"),
        ({"scope": "device", "case_name": "C", "reason": "r"}, "device"),
        ({"scope": "snapshot", "device": str(dev.pk), "case_name": "C", "reason": "r",
          "snapshot_id": "cd" * 32}, "snapshot_id"),
        ({"scope": "snapshot", "device": str(dev.pk), "case_name": "C", "reason": "r",
          "snapshot_id": "../x"}, "snapshot_id"),
        ({"scope": "device", "device": str(dev.pk), "case_name": " ", "reason": "r"}, "case_name"),
        ({"scope": "nope", "case_name": "C", "reason": "r"}, "scope"),
    ]  # fmt: skip
    for body, field in bad:
        r = admin.post("/api/v1/holds/", body, format="json")
        assert r.status_code == 400 and field in r.json(), (body, r.content)
    assert not LegalHold.objects.exists()

    r = admin.post(
        "/api/v1/holds/",
        {"scope": "snapshot", "device": str(dev.pk), "snapshot_id": "AB" * 32,
         "case_name": "Case 1", "reason": "=cmd|' /C calc'!A0"},
        format="json",
    )  # fmt: skip
    assert r.status_code == 201, r.content
    hold = r.json()
    assert hold["state"] == "active" and hold["snapshot_id"] == "ab" * 32
    assert hold["created_by"] == "admin"

    # an Auditor reads and exports, never places nor releases
    assert auditor.get("/api/v1/holds/?state=active").json()["count"] == 1
    assert auditor.post(f"/api/v1/holds/{hold['id']}/release/", {"reason": "x"}).status_code == 403
    r = auditor.get("/api/v1/holds/export/")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode())))
    assert rows[0] == services.EXPORT_HEADER and len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["hostname"] == "'=HYPERLINK(1)" and row["owner"] == "'@bob"
    assert row["reason"] == "'=cmd|' /C calc'!A0" and row["state"] == "active"
    assert AuditEvent.objects.filter(action="hold.export").count() == 1

    assert admin.post(f"/api/v1/holds/{hold['id']}/release/", {}, format="json").status_code == 400
    r = admin.post(f"/api/v1/holds/{hold['id']}/release/", {"reason": "closed"}, format="json")
    assert r.status_code == 200 and r.json()["state"] == "released"
    assert r.json()["released_by"] == "admin" and r.json()["release_reason"] == "closed"
    again = admin.post(f"/api/v1/holds/{hold['id']}/release/", {"reason": "x"}, format="json")
    assert again.status_code == 400
    assert admin.get("/api/v1/holds/?state=active").json()["count"] == 0
    assert admin.get("/api/v1/holds/?state=released").json()["count"] == 1
    assert admin.get("/api/v1/holds/?state=bogus").status_code == 400
    release = AuditEvent.objects.get(action="hold.release")
    assert release.after == {"release_reason": "closed"} and release.actor_name == "admin"


def test_holds_page_places_releases_and_exports(ui, small_fleet):
    dev = small_fleet.devices[1]
    admin = ui("admin")
    r = admin.post(
        "/holds/",
        {"scope": "device", "device": str(dev.pk), "case_name": "Case 2", "reason": "audit"},
    )
    assert r.status_code == 302
    hold = LegalHold.objects.get()
    assert hold.device == dev and hold.active
    page = admin.get("/holds/").content.decode()
    assert "Case 2" in page and "Release" in page
    assert "Place a hold" not in ui("auditor").get("/holds/").content.decode()
    r = admin.post(f"/holds/{hold.pk}/release/", {"reason": "over"})
    assert r.status_code == 302
    hold.refresh_from_db()
    assert not hold.active and hold.release_reason == "over"
    body = ui("auditor").get("/holds/export.csv?state=released").content.decode()
    assert "Case 2" in body and "released" in body
