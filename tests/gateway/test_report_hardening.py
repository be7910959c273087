"""Issue 10: agents' reports are untrusted and concurrent. A progress report
racing the job's 'started' report is kept, not dropped on a duplicate key;
deeply nested or NUL-carrying fields are refused cleanly, never a crash or a
database error that loses the whole report."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.db import connection, connections, transaction

from agent.rpc import agent_pb2 as pb
from console.audit.services import SYSTEM
from console.fleet import enrollment
from console.fleet.models import Device
from console.fleet.services import create_enrollment_token
from console.gateway.services import connections as gw_connections
from console.gateway.services import reports
from console.jobs import services as jobs
from console.jobs.models import JobRun


def _device() -> Device:
    return Device.objects.create(hostname="pc-race", os="linux")


def _progress(job_id: str, percent: float) -> pb.Report:
    return pb.Report(
        progress=pb.JobProgress(
            job_id=job_id, kind="backup", trigger="schedule", percent=percent, files_done=7
        )
    )


def _wait_for_a_lock_waiter(timeout: float = 20.0) -> None:
    """Block until another session of this database waits on a row lock (the
    second insert of the same unique key waits for the first to commit)."""
    deadline = time.monotonic() + timeout
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the second report never waited on the first one's insert")


@pytest.mark.django_db(transaction=True)
def test_progress_racing_the_started_report_is_kept_not_dropped(caplog):
    if connection.vendor != "postgresql":
        pytest.skip("needs a database with concurrent writers (PostgreSQL)")
    device = _device()
    key = reports.run_key(str(device.pk), "job-race")
    inserted, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def started_report():
        # The 'started' report: inserts the run and holds its transaction open
        # until the progress report is blocked on the same key.
        try:
            with transaction.atomic():
                jobs.record_job_started(str(device.pk), key)
                inserted.set()
                release.wait(20)
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
        finally:
            connections.close_all()

    def progress_flush():
        try:
            reports.ingest_progress([((str(device.pk), "job-race"), _progress("job-race", 42.0))])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    first = threading.Thread(target=started_report)
    first.start()
    assert inserted.wait(20)
    second = threading.Thread(target=progress_flush)
    caplog.set_level(logging.ERROR, logger="console.gateway.services.reports")
    second.start()
    try:
        _wait_for_a_lock_waiter()
    finally:
        release.set()
        first.join(20)
        second.join(20)
    assert not errors
    assert "dropped" not in caplog.text and "IntegrityError" not in caplog.text
    run = JobRun.objects.get(idempotency_key=key)
    assert run.progress == pytest.approx(0.42) and run.progress_detail["files_done"] == 7
    assert JobRun.objects.filter(device=device).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_result_racing_the_first_progress_finishes_the_one_run():
    if connection.vendor != "postgresql":
        pytest.skip("needs a database with concurrent writers (PostgreSQL)")
    device = _device()
    key = reports.run_key(str(device.pk), "job-fast")
    inserted, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def progress_insert():
        try:
            with transaction.atomic():
                jobs.record_job_started(str(device.pk), key)
                inserted.set()
                release.wait(20)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def result():
        try:
            jobs.record_job_result(str(device.pk), key, ok=True, snapshot_id="snap-1")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    first = threading.Thread(target=progress_insert)
    first.start()
    assert inserted.wait(20)
    second = threading.Thread(target=result)
    second.start()
    try:
        _wait_for_a_lock_waiter()
    finally:
        release.set()
        first.join(20)
        second.join(20)
    assert not errors
    run = JobRun.objects.get(idempotency_key=key)
    assert run.state == "succeeded" and run.snapshot_id == "snap-1"


# --- untrusted fields in reports ---------------------------------------------------------------


def _result(job_id: str, **fields) -> pb.Report:
    return pb.Report(
        idempotency_key=f"result:{job_id}",
        result=pb.JobResult(job_id=job_id, kind="backup", trigger="schedule", **fields),
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("stats_json", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ('{"a":' * 40 + "1" + "}" * 40, "nested deeper than"),
        ('{"files_read": 3, "note": "a\\u0000b"}', "NUL character"),
        ("[1, 2, 3]", "not a JSON object"),
        ('{"bytes": NaN}', "NaN is not a JSON value"),
    ],
    ids=["recursion", "too-deep", "nul", "list", "nan"],
)
def test_refused_statistics_keep_the_result_and_say_why(stats_json, reason):
    device = _device()
    report = _result("job-s", state="succeeded", snapshot_id="snap-s", stats_json=stats_json)
    assert reports.ingest(str(device.pk), report) is True
    run = JobRun.objects.get(device=device)
    assert run.state == "succeeded" and run.snapshot_id == "snap-s"
    assert reason in run.warnings[0] and run.warnings[0].startswith("statistics refused")
    assert "note" not in run.stats and "a" not in run.stats
    assert device.snapshots.filter(snapshot_id="snap-s").exists()


@pytest.mark.django_db
def test_nul_in_an_agents_text_is_stored_visibly_replaced_not_a_database_error():
    device = _device()
    progress = _progress("job\x00n", 30.0)
    progress.progress.current_path = "/home/ana/a\x00b.txt"
    reports.ingest(str(device.pk), progress)
    run = JobRun.objects.get(device=device)
    assert run.idempotency_key.endswith("job\ufffdn")
    assert run.progress_detail["current_path"] == "/home/ana/a\ufffdb.txt"
    result = _result(
        "job\x00n",
        state="failed",
        error="disk \x00 gone",
        warnings=["read: /x\x00y: denied"],
        stats_json='{"files_read": 2}',
    )
    assert reports.ingest(str(device.pk), result) is True
    run.refresh_from_db()
    assert run.state == "failed" and run.error == "disk \ufffd gone"
    assert run.warnings == ["read: /x\ufffdy: denied"] and run.stats["files_read"] == 2
    snapshot = pb.Report(
        idempotency_key="snap\x00k",
        snapshot=pb.SnapshotInfo(snapshot_id="s\x00id", paths=["/p\x00q"], tags=["t\x00"]),
    )
    assert reports.ingest(str(device.pk), snapshot) is True
    snap = device.snapshots.get()
    assert snap.snapshot_id == "s\ufffdid" and snap.paths == ["/p\ufffdq"]


# --- host facts (enrollment, stream hello) --------------------------------------------------


@pytest.mark.django_db
def test_nul_in_host_facts_is_stored_replaced_at_enrollment_and_on_connect(settings, tmp_path):
    settings.PKI_DIR = tmp_path / "pki"
    settings.ORG_KEY_FILE = tmp_path / "org.key"
    settings.S3_ENDPOINT = ""
    settings.LOCAL_STORAGE_DIR = tmp_path / "storage"
    _, token = create_enrollment_token(SYSTEM, "once")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pc")]))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    host = {"hostname": "pc\x00evil", "os": "linux", "os_version": "6\x00", "username": "a\x00"}
    device = enrollment.enroll(token, host, csr).device
    device.refresh_from_db()
    assert device.hostname == "pc\ufffdevil" and device.owner == "a\ufffd"
    gw_connections.stream_opened(device, {"hostname": "renamed\x00", "agent_version": "1\x00"}, "")
    device.refresh_from_db()
    assert device.hostname == "renamed\ufffd" and device.agent_version == "1\ufffd"
