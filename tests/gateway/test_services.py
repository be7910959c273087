"""Control-plane services without processes: delivery outcomes, batched
acknowledgements, beat maintenance."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from console.audit.services import SYSTEM
from console.fleet import protection
from console.fleet.models import Device
from console.gateway.models import DeviceConnection
from console.gateway.registry import Registry
from console.gateway.services import connections, delivery
from console.jobs import commands
from console.jobs.dispatch import DeliveryRetry
from console.jobs.models import Command, CommandKind, CommandState
from console.jobs.services import request_backup

pytestmark = pytest.mark.django_db


def _device(**kw) -> Device:
    return Device.objects.create(hostname=kw.pop("hostname", "pc-1"), os="linux", **kw)


class FakeRegistry:
    enabled = True

    def __init__(self, instance=None, receivers=1, fail=False):
        self.instance, self.receivers, self.fail, self.published = instance, receivers, fail, []

    def locate(self, device_id):
        if self.fail:
            raise ConnectionError("redis down")
        return self.instance

    def publish(self, instance, message):
        self.published.append((instance, message))
        return self.receivers


def test_delivery_outcomes():
    dev = _device()
    cmd = request_backup(SYSTEM, dev)
    assert delivery.deliver(str(cmd.pk), FakeRegistry(instance=None)) == "offline"
    reg = FakeRegistry(instance="gw-1")
    assert delivery.deliver(str(cmd.pk), reg) == "published"
    assert reg.published == [
        ("gw-1", {"type": "command", "device": str(dev.pk), "command": str(cmd.pk)})
    ]
    with pytest.raises(DeliveryRetry):
        delivery.deliver(str(cmd.pk), FakeRegistry(fail=True))
    with pytest.raises(DeliveryRetry):  # registered instance not listening (restarting)
        delivery.deliver(str(cmd.pk), FakeRegistry(instance="gw-1", receivers=0))
    commands.mark_sent([cmd.pk])
    assert delivery.deliver(str(cmd.pk), reg) == "skipped"  # idempotent
    Command.objects.filter(pk=cmd.pk).update(
        state=CommandState.PENDING, expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    assert delivery.deliver(str(cmd.pk), reg) == "expired"
    assert Command.objects.get(pk=cmd.pk).state == CommandState.EXPIRED
    assert delivery.deliver("00000000-0000-0000-0000-000000000000", reg) == "missing"


def test_registry_without_redis_is_inert():
    r = Registry(url="")
    assert not r.enabled and r.locate("x") is None and r.publish("gw", {}) == 0


def test_batched_acknowledgements_only_move_the_callers_commands():
    mine, other = _device(hostname="mine"), _device(hostname="other")
    a = request_backup(SYSTEM, mine)
    b = request_backup(SYSTEM, other)
    commands.mark_sent([a.pk, b.pk])
    apply = Command.objects.create(
        device=mine,
        kind=CommandKind.APPLY_POLICY,
        payload={"hash": "h2"},
        expires_at=timezone.now() + dt.timedelta(hours=1),
    )
    # "mine" acknowledges its own command and, spoofing, the other's.
    commands.acknowledge_many(
        [(str(mine.pk), str(a.pk), True, ""), (str(mine.pk), str(b.pk), True, "")],
        {"h2": {str(mine.pk)}},
    )
    assert Command.objects.get(pk=a.pk).state == CommandState.ACKNOWLEDGED
    assert Command.objects.get(pk=b.pk).state == CommandState.SENT
    assert Command.objects.get(pk=apply.pk).state == CommandState.DONE
    mine.refresh_from_db()
    assert mine.applied_hash == "h2" and mine.applied_at is not None
    # A refused command fails with the agent's reason.
    commands.acknowledge_many([(str(other.pk), str(b.pk), False, "unknown job kind")], {})
    b.refresh_from_db()
    assert b.state == CommandState.FAILED and "unknown job kind" in b.error


def test_batched_flush_and_mark_offline(settings):
    devs = [_device(hostname=f"pc-{i}") for i in range(3)]
    now = timezone.now()
    connections.flush(
        {str(d.pk): ("gw-1", now) for d in devs},
        {str(devs[0].pk): {"state": "backing_up", "pause_reason": "", "changed": True}},
    )
    assert DeviceConnection.objects.filter(online=True, gateway_id="gw-1").count() == 3
    assert DeviceConnection.objects.get(device=devs[0]).agent_state == "backing_up"
    assert all(Device.objects.get(pk=d.pk).last_seen_at for d in devs)
    DeviceConnection.objects.filter(device=devs[1]).update(
        last_heartbeat_at=now - dt.timedelta(hours=1)
    )
    assert connections.mark_offline() == 1
    assert not DeviceConnection.objects.get(device=devs[1]).online


def test_recompute_protection_fixes_stale_deadlines():
    at = timezone.now() - dt.timedelta(hours=1)
    dev = _device(last_success_at=at, rpo=dt.timedelta(hours=24))
    assert protection.recompute_protection() == 1
    dev.refresh_from_db()
    assert dev.protected_until == at + dt.timedelta(hours=24)
    assert dev.status == "protected"
    assert protection.recompute_protection() == 0


def test_wire_form_of_commands():
    from console.gateway.wire import command_message
    from console.jobs.models import Snapshot
    from console.jobs.services import cancel_command, request_restore

    dev = _device()
    backup = request_backup(SYSTEM, dev)
    msg = command_message(backup)
    assert msg.command_id == str(backup.pk) and msg.run_job.kind == "backup"
    assert msg.expires_at.seconds > 0
    commands.mark_sent([backup.pk])  # a sent command is cancelled by a new command
    cancel = cancel_command(SYSTEM, backup)
    assert cancel.kind == "cancel"
    assert command_message(cancel).cancel.job_command_id == str(backup.pk)
    Snapshot.objects.create(device=dev, snapshot_id="abc")
    restore = request_restore(SYSTEM, dev, "abc", paths=["/home/ana"], target="/tmp/r")
    import json

    args = json.loads(command_message(restore).run_job.args_json)
    assert args == {
        "snapshot_id": "abc",
        "paths": ["/home/ana"],
        "target": "/tmp/r",
        "overwrite": False,
    }


def test_progress_batches_create_and_advance_a_running_job():
    from agent.rpc import agent_pb2 as pb
    from console.gateway.services import reports
    from console.jobs.models import JobRun

    dev = _device()

    def progress(percent):
        return pb.Report(
            progress=pb.JobProgress(
                job_id="j1", kind="backup", trigger="catch_up", percent=percent, files_done=3
            )
        )

    reports.ingest_progress([((str(dev.pk), "j1"), progress(10.0))])
    reports.ingest_progress([((str(dev.pk), "j1"), progress(55.0))])
    run = JobRun.objects.get(device=dev)
    assert run.state == "running" and run.trigger == "catch_up"
    assert run.progress == pytest.approx(0.55) and run.progress_detail["files_done"] == 3
    reports.ingest_progress([((str(dev.pk), "j1"), progress(20.0))])  # stale: ignored
    assert JobRun.objects.get(device=dev).progress == pytest.approx(0.55)


def test_enrollment_is_all_or_nothing_when_storage_is_down(
    settings, s3_server, s3_bucket, tmp_path
):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from console.core import pki
    from console.fleet import enrollment
    from console.fleet.models import EnrollmentToken
    from console.fleet.services import create_enrollment_token

    settings.PKI_DIR = tmp_path / "pki"
    settings.ORG_KEY_FILE = tmp_path / "org.key"
    settings.S3_ENDPOINT = s3_server.endpoint
    settings.S3_ACCESS_KEY, settings.S3_SECRET_KEY = s3_server.access_key, s3_server.secret_key
    token_row, token = create_enrollment_token(SYSTEM, "once")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pc")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    host = {"hostname": "pc", "os": "linux"}
    settings.S3_BUCKET = "no-such-bucket-here"
    with pytest.raises(enrollment.EnrollmentUnavailable):
        enrollment.enroll(token, host, csr)
    assert EnrollmentToken.objects.get(pk=token_row.pk).uses_remaining == 1
    assert not Device.objects.exists()

    settings.S3_BUCKET = s3_bucket
    result = enrollment.enroll(token, host, csr)
    assert result.storage_access == "grant"
    assert result.repository_url == f"s3://{s3_bucket}/{settings.CAIRN_ORG}/{result.device.pk}"
    assert pki.device_id_from_pem(result.certificate_pem) == str(result.device.pk)
    assert Device.objects.get().cert_fingerprint == pki.fingerprint(result.certificate_pem)
    with pytest.raises(enrollment.EnrollmentRefused, match="used up"):
        enrollment.enroll(token, host, csr)
