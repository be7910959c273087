"""Server-side verification and test restores (console/storage/verification.py)
against moto S3, on repositories written by the real backup engine: a flipped
byte names the damaged file on the job page and in the API, a test restore
proves the bytes equal, the rotation reads every pack within the policy's
period, and the repository's size is measured."""

from __future__ import annotations

import datetime as dt
import math
import os

import pytest
from django.urls import reverse

from agent.engine.backup import run_backup
from agent.engine.pack import TREE, pack_key
from agent.engine.repository import Repository
from console.audit.models import AuditEvent
from console.audit.services import SYSTEM
from console.core.keys import org_key
from console.dashboard.templatetags.cairn import bytes_h
from console.fleet import services as fleet
from console.fleet.models import Device
from console.jobs.models import JobKind, JobRun, JobState, JobTrigger, Snapshot
from console.policies import services as policies
from console.policies import spec as specs
from console.reports import history
from console.storage import targets, tasks, verification
from console.storage.models import VerificationState
from console.storage.targets import bootstrap_repository
from tests.support import wait_until


@pytest.fixture
def s3_settings(settings, s3_server, s3_bucket, tmp_path):
    settings.S3_ENDPOINT = s3_server.endpoint
    settings.S3_BUCKET = s3_bucket
    settings.S3_ACCESS_KEY = s3_server.access_key
    settings.S3_SECRET_KEY = s3_server.secret_key
    settings.CAIRN_ORG = "acme"
    settings.ORG_KEY_FILE = tmp_path / "keys" / "org.key"
    return settings


def make_device(every_days=7, sample_percent=25, hostname="pc-001"):
    group = fleet.create_group(SYSTEM, f"G {hostname}")
    _, token = fleet.create_enrollment_token(SYSTEM, "t", group, max_uses=5)
    dev = fleet.enroll_device(token, hostname=hostname, os="linux")
    spec = specs.default_spec()
    spec["verification"] = {"every_days": every_days, "sample_percent": sample_percent}
    policy = policies.create_policy(SYSTEM, f"Verify {hostname}", spec)
    policies.assign_policy(SYSTEM, policy, group, 100)
    bootstrap_repository(targets.target(), str(dev.pk), os.urandom(32))
    return dev


@pytest.fixture
def device(db, s3_settings):
    return make_device()


def open_repo(dev) -> Repository:
    return Repository.open(targets.admin_store(targets.target(), str(dev.pk)), key=org_key())


def back_up(dev, src, files: dict[str, bytes], pack_size=None) -> str:
    src.mkdir(exist_ok=True)
    for name, data in files.items():
        (src / name).write_bytes(data)
    repo = open_repo(dev)
    if pack_size:
        repo.pack_size = pack_size
    sid = run_backup(repo, [str(src)], hostname=dev.hostname, workers=2).snapshot_id
    Snapshot.objects.create(device=dev, snapshot_id=sid, paths=[str(src)])
    return sid


def flip_byte(dev, pack_id: str, at: int = 200) -> None:
    store = targets.admin_store(targets.target(), str(dev.pk))
    key = pack_key(pack_id)
    data = bytearray(store.get(key))
    data[at] ^= 0x01
    store.delete(key)
    store.put(key, bytes(data))


def pack_of(dev, src_file: bytes) -> str:
    repo = open_repo(dev)
    return repo.index.get(repo.blob_id(src_file)).pack_id


def flip_in_file(dev, content: bytes) -> str:
    """Flip one byte inside the stored (encrypted) chunk of a one-chunk file;
    the pack's id."""
    repo = open_repo(dev)
    entry = repo.index.get(repo.blob_id(content))
    flip_byte(dev, entry.pack_id, at=entry.offset + entry.length // 2)
    return entry.pack_id


def test_flipped_byte_names_the_damaged_file_on_the_job_page_and_in_the_api(
    device, tmp_path, ui, api
):
    admin_client, api_client = ui("admin"), api("auditor")
    src = tmp_path / "src"
    good, bad = os.urandom(100 * 1024), os.urandom(100 * 1024)
    sid = back_up(device, src, {"good.bin": good, "ledger.xlsx": bad})
    # every pack is read in one run
    VerificationState.objects.create(device=device)
    clean = _verify_all(device)
    assert clean.state == JobState.SUCCEEDED and clean.stats["damaged_files"] == []
    assert clean.stats["damaged"] == [] and clean.error == ""
    assert set(clean.stats) == set(verification.STATS_KEYS)

    pack = flip_in_file(device, bad)
    run = _verify_all(device)
    assert run.kind == JobKind.VERIFY and run.state == JobState.FAILED
    assert run.error == "damage found: 1 pack(s), 1 file(s)"
    assert run.stats["damaged"] == [pack]
    path = f"{src}/ledger.xlsx"
    assert {"snapshot": sid, "path": path} in run.stats["damaged_files"]
    assert all(f["path"] != f"{src}/good.bin" for f in run.stats["damaged_files"])
    assert run.stats["bytes_read"] > 0 and run.stats["throughput_bps"] > 0

    page = admin_client.get(reverse("job-detail", args=[run.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "ledger.xlsx" in html and "Damaged files" in html and pack[:16] in html

    api = api_client.get(f"/api/v1/jobs/{run.pk}/")
    assert api.status_code == 200, api.content
    body = api.json()
    assert body["kind"] == "verify"
    assert {"snapshot": sid, "path": path} in body["stats"]["damaged_files"]
    # the compliance report's words for it
    assert history.check_result(run.state, run.stats) == f"damaged: 1 objects, 1 files ({path})"
    assert history.check_result(clean.state, clean.stats) == "ok"
    typed = body["verification"]
    assert typed["ok"] is False and typed["damaged"] == [pack]
    assert {"snapshot": sid, "path": path} in typed["damaged_files"]
    assert typed["bytes_read"] == run.stats["bytes_read"] and typed["packs_read"] >= 1
    detail = api_client.get(f"/api/v1/devices/{device.pk}/").json()["verification"]
    assert detail["verify"]["job"] == run.pk and detail["test_restore"] is None
    assert {"snapshot": sid, "path": path} in detail["verify"]["result"]["damaged_files"]

    device_page = admin_client.get(reverse("device-detail", args=[device.pk]))
    assert "ledger.xlsx" in device_page.content.decode()


def _verify_all(device) -> JobRun:
    """Verify with a sample of 100% (one run reads every pack)."""
    state, _ = VerificationState.objects.get_or_create(device=device)
    state.cursor = ""
    state.save()
    original = verification._verification

    def full(dev):
        eff, v = original(dev)
        return eff, type(v)(every_days=v.every_days, sample_percent=100)

    verification._verification = full
    try:
        return verification.verify_device(str(device.pk))
    finally:
        verification._verification = original


def test_test_restore_proves_bytes_equal_and_records_throughput(device, tmp_path):
    src = tmp_path / "src"
    files = {f"f{i}.bin": os.urandom(30 * 1024 + i) for i in range(5)}
    sid = back_up(device, src, files)
    run = verification.test_restore_device(str(device.pk), files=5, seed=1)
    assert run.kind == JobKind.TEST_RESTORE and run.state == JobState.SUCCEEDED, run.error
    assert set(run.stats) == set(verification.STATS_KEYS)
    assert run.stats["files_compared"] == 5
    assert run.stats["bytes_read"] == sum(len(d) for d in files.values())
    assert run.stats["damaged_files"] == [] and run.stats["duration_s"] > 0
    assert run.stats["throughput_bps"] == int(run.stats["bytes_read"] / run.stats["duration_s"])
    assert run.progress_detail["snapshot"] == sid
    assert {f["path"] for f in run.progress_detail["files"]} == {f"{src}/{n}" for n in files}

    # a flipped byte in one file's pack: the test restore names that file
    flip_in_file(device, files["f3.bin"])
    damaged = verification.test_restore_device(str(device.pk), files=5, seed=1)
    names = {f["path"] for f in damaged.stats["damaged_files"]}
    assert damaged.state == JobState.FAILED
    assert damaged.error == "damage found: 1 of 5 file(s) did not restore intact"
    assert names == {f"{src}/f3.bin"}
    problems = [f["problem"] for f in damaged.progress_detail["files"] if not f["ok"]]
    assert len(problems) == 1 and "failed authentication" in problems[0]
    assert all(f["snapshot"] == sid for f in damaged.stats["damaged_files"])


def test_no_plaintext_is_written_to_disk(device, tmp_path, monkeypatch):
    src = tmp_path / "src"
    secret = b"TOP-SECRET-" * 4000
    back_up(device, src, {"secret.txt": secret})
    monkeypatch.chdir(tmp_path / "src")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    run = verification.test_restore_device(str(device.pk), files=5)
    assert run.stats["files_compared"] == 1 and run.stats["damaged_files"] == []
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert after == before  # nothing created or changed under the test's folders


def test_rotation_reads_every_pack_within_the_period(db, s3_settings, tmp_path):
    dev = make_device(every_days=2, sample_percent=25)
    files = {f"f{i}.bin": os.urandom(64 * 1024) for i in range(12)}
    back_up(dev, tmp_path / "src", files, pack_size=64 * 1024)
    repo = open_repo(dev)
    packs = sorted(repo.index.named_pack_ids())
    assert len(packs) >= 8
    # flip a byte in every file chunk of every data pack (trees stay intact,
    # so that files can be named): each run's "damaged" lists exactly the
    # data packs it read
    data_packs = []
    for pack in packs:
        data_blobs = [e for _b, e in repo.index.items() if e.pack_id == pack and e.type != TREE]
        for e in data_blobs:
            flip_byte(dev, pack, at=e.offset + e.length // 2)
        if data_blobs:
            data_packs.append(pack)
    assert len(data_packs) >= 8
    packs_read = 0
    damaged_files: set[str] = set()

    step = verification.interval(2, 25)
    assert step == dt.timedelta(hours=12)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    seen: list[str] = []
    runs = 0
    t = start
    while t < start + dt.timedelta(days=2):  # the beat, hourly, over the period
        for device_id, kind in verification.due(now=t):
            if kind == "verify" and device_id == str(dev.pk):
                run = verification.verify_device(device_id, now=t)
                # a run whose share holds only the (intact) tree pack finds nothing
                damage = bool(run.stats["damaged"])
                assert run.state == (JobState.FAILED if damage else JobState.SUCCEEDED)
                assert len(run.stats["damaged"]) <= math.ceil(len(packs) * 0.25)
                seen.extend(run.stats["damaged"])
                packs_read += run.progress_detail["packs_read"]
                damaged_files |= {f["path"] for f in run.stats["damaged_files"]}
                runs += 1
        t += dt.timedelta(hours=1)
    assert runs == 4
    assert sorted(seen) == data_packs  # every pack read once within the period
    assert packs_read == len(packs)
    # each file was named by the run that read its pack
    assert damaged_files == {f"{tmp_path}/src/{n}" for n in files}


def test_due_follows_each_devices_policy(db, s3_settings):
    weekly = make_device(every_days=7, sample_percent=5, hostname="pc-weekly")
    off = make_device(every_days=0, sample_percent=5, hostname="pc-off")
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert set(verification.due(now=now)) == {
        (str(weekly.pk), "verify"),
        (str(weekly.pk), "test_restore"),
    }
    assert verification.interval(7, 5) == dt.timedelta(hours=8, minutes=24)
    VerificationState.objects.create(device=weekly, last_verify_at=now, last_test_restore_at=now)
    assert verification.due(now=now + dt.timedelta(hours=8)) == []
    assert verification.due(now=now + dt.timedelta(hours=8, minutes=24)) == [
        (str(weekly.pk), "verify")
    ]
    assert (str(weekly.pk), "test_restore") in verification.due(now=now + dt.timedelta(days=7))
    assert off.pk not in {d for d, _k in verification.due(now=now + dt.timedelta(days=30))}


def test_a_backed_up_queue_runs_each_due_device_once(device, tmp_path):
    """The beat queued the device twice (the worker fell behind): the second
    task finds it no longer due."""
    back_up(device, tmp_path / "src", {"a.bin": os.urandom(10 * 1024)})
    assert tasks.verify_device(str(device.pk)) == JobState.SUCCEEDED
    assert tasks.verify_device(str(device.pk)) == "not due"
    assert tasks.test_restore_device(str(device.pk)) == JobState.SUCCEEDED
    assert tasks.test_restore_device(str(device.pk)) == "not due"
    assert JobRun.objects.filter(device=device).count() == 2
    # the Verify button's task runs whatever the schedule says
    run = verification.request_verify(SYSTEM, device)
    assert tasks.verify_device(str(device.pk), run.pk) == JobState.SUCCEEDED


def test_storage_used_is_measured_after_a_real_backup(device, tmp_path, api, ui):
    api_client = api("auditor")
    assert Device.objects.get(pk=device.pk).storage_bytes == 0
    back_up(device, tmp_path / "src", {"a.bin": os.urandom(300 * 1024)})
    run = verification.verify_device(str(device.pk))
    store = targets.admin_store(targets.target(), str(device.pk))
    expected = sum(store.size(k) for k in store.list(""))
    assert expected > 300 * 1024
    assert Device.objects.get(pk=device.pk).storage_bytes == expected
    assert run.progress_detail["repository_bytes"] == expected
    body = api_client.get(f"/api/v1/devices/{device.pk}/").json()
    assert body["storage_bytes"] == expected
    # the device page, the storage page and the CSV show it too
    admin = ui("auditor")
    shown = bytes_h(expected)
    assert shown != "0 B"
    assert shown in admin.get(reverse("device-detail", args=[device.pk])).content.decode()
    assert shown in admin.get(reverse("storage")).content.decode()
    csv = b"".join(admin.get(reverse("device-export")).streaming_content).decode()
    assert str(expected) in csv


@pytest.fixture
def worker_env(s3_server, s3_bucket, tmp_path):
    """The real Celery worker sees the test's S3 and organisation key."""
    return {
        "S3_ENDPOINT": s3_server.endpoint,
        "S3_BUCKET": s3_bucket,
        "S3_ACCESS_KEY": s3_server.access_key,
        "S3_SECRET_KEY": s3_server.secret_key,
        "CAIRN_ORG": "acme",
        "CAIRN_ORG_KEY_FILE": str(tmp_path / "keys" / "org.key"),
    }


def test_verify_button_runs_it_now_on_a_worker(device, tmp_path, ui, celery_worker):
    back_up(device, tmp_path / "src", {"a.bin": os.urandom(50 * 1024)})
    resp = ui("admin").post(reverse("device-verify", args=[device.pk]))
    assert resp.status_code in (302, 303)
    run = JobRun.objects.get(device=device, kind=JobKind.VERIFY)
    assert run.trigger == JobTrigger.MANUAL
    wait_until(lambda: JobRun.objects.get(pk=run.pk).state != JobState.RUNNING, 60, what="verify")
    run.refresh_from_db()
    assert run.state == JobState.SUCCEEDED, run.error
    assert run.stats["bytes_read"] > 0 and run.stats["damaged_files"] == []
    event = AuditEvent.objects.get(action="device.verify")
    assert event.after == {"job": run.pk, "where": "console"}
    assert Device.objects.get(pk=device.pk).storage_bytes > 50 * 1024
    # an auditor may not press it
    assert ui("auditor").post(reverse("device-verify", args=[device.pk])).status_code == 403


def test_api_verify_runs_on_the_console(device, tmp_path, api, django_capture_on_commit_callbacks):
    back_up(device, tmp_path / "src", {"a.bin": os.urandom(20 * 1024)})
    with django_capture_on_commit_callbacks() as queued:
        resp = api("operator").post(f"/api/v1/devices/{device.pk}/verify/")
    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert body["kind"] == "verify" and body["state"] == "running"
    assert body["verification"] is None  # its results come when it finishes
    assert len(queued) == 1  # the worker's task, queued once the request commits
    # a second request while it runs answers the same job
    again = api("admin").post(f"/api/v1/devices/{device.pk}/verify/").json()
    assert again["id"] == body["id"]
    assert api("auditor").post(f"/api/v1/devices/{device.pk}/verify/").status_code == 403
    # what the worker runs
    run = verification.verify_device(str(device.pk), run_id=body["id"])
    assert run.state == JobState.SUCCEEDED and run.stats["bytes_read"] > 0


def test_a_failing_run_is_recorded_never_left_running(device, s3_settings, tmp_path):
    back_up(device, tmp_path / "src", {"a.bin": os.urandom(10 * 1024)})
    s3_settings.ORG_KEY_FILE = tmp_path / "other.key"  # the wrong organisation key
    for fn in (verification.verify_device, verification.test_restore_device):
        run = fn(str(device.pk))
        assert run.state == JobState.FAILED and run.error and "\n" not in run.error
        assert set(run.stats) == set(verification.STATS_KEYS) and run.finished_at
    # the next scheduled run is not held back by them
    s3_settings.ORG_KEY_FILE = tmp_path / "keys" / "org.key"
    assert verification.verify_device(str(device.pk)).state == JobState.SUCCEEDED


def test_a_damaged_directory_listing_names_the_directory(device, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "x.bin").write_bytes(os.urandom(10 * 1024))
    sid = back_up(device, src, {"a.bin": os.urandom(10 * 1024)})
    repo = open_repo(device)
    sub = next(
        node.subtree
        for path, node in repo.walk(repo.load_snapshot(sid).tree)
        if path == f"{src}/sub".encode()
    )
    entry = repo.index.get(sub)
    flip_byte(device, entry.pack_id, at=entry.offset + entry.length // 2)
    run = _verify_all(device)
    assert run.state == JobState.FAILED
    assert run.stats["damaged_files"] == [{"snapshot": sid, "path": f"{src}/sub"}]
