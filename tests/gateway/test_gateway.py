"""The gateway as a real process over real sockets: enrollment, mutual TLS,
heartbeats written in batches, idempotent reports, revocation closing the
stream, and Celery delivering a command through Redis to the right gateway."""

from __future__ import annotations

import threading
import uuid

import grpc
import pytest
from django.utils import timezone

from agent.rpc import agent_pb2 as pb
from agent.rpc import agent_pb2_grpc as pb_grpc
from console.audit.services import SYSTEM
from console.fleet.models import Device
from console.fleet.services import create_enrollment_token, revoke_device
from console.gateway.models import DeviceConnection
from console.jobs.models import Command, CommandState, DailyJobStats, JobRun
from tests.gateway.harness import Gateway, StreamClient, enroll_agent, run_enroll, wait_for

pytestmark = pytest.mark.slow


def _token(uses=1):
    return create_enrollment_token(SYSTEM, f"t-{uuid.uuid4().hex[:6]}", max_uses=uses)[1]


def test_enroll_then_mutual_tls_stream_heartbeat_and_revocation(gateway, tmp_path):
    token = _token(uses=1)
    home = tmp_path / "agent"
    device_id = enroll_agent(home, gateway, token)
    device = Device.objects.get(pk=device_id)
    assert device.cert_fingerprint and not device.revoked
    for name in ("device.key", "repo.key", "agent.json"):
        assert (home / name).stat().st_mode & 0o077 == 0, name

    # The token was single-use: a second enrollment is refused.
    res = run_enroll(tmp_path / "other", gateway, token)
    assert res.returncode != 0 and "used up" in res.stderr

    # Without a client certificate: refused on the mTLS port (handshake) and
    # unauthenticated on the enrollment port.
    ca = (home / "ca.crt").read_bytes()
    for address, codes in (
        (gateway.address, {grpc.StatusCode.UNAVAILABLE}),
        (gateway.enroll_address, {grpc.StatusCode.UNAUTHENTICATED}),
    ):
        with grpc.secure_channel(address, grpc.ssl_channel_credentials(ca)) as ch:
            with pytest.raises(grpc.RpcError) as err:
                pb_grpc.AgentGatewayStub(ch).SubmitReports(pb.ReportBatch(), timeout=10)
            assert err.value.code() in codes, (address, err.value)

    client = StreamClient(home).connect()
    try:
        welcome = client.recv()
        assert welcome.WhichOneof("body") == "welcome"
        assert welcome.welcome.device_id == device_id
        client.send(pb.AgentMessage(heartbeat=pb.Heartbeat(state="idle", outbox_size=3)))
        wait_for(
            lambda: DeviceConnection.objects.filter(
                device_id=device_id, online=True, outbox_size=3
            ).exists(),
            15,
            "the heartbeat to be flushed",
        )
        before = Device.objects.get(pk=device_id).last_seen_at

        # Revocation closes the open stream and refuses the next call.
        revoke_device(SYSTEM, Device.objects.get(pk=device_id), reason="stolen")
        result = {}

        def drain():
            try:
                while True:
                    client.recv()
            except grpc.RpcError as exc:
                result["code"] = exc.code()

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        t.join(15)
        assert result.get("code") == grpc.StatusCode.PERMISSION_DENIED
    finally:
        client.close()
    again = StreamClient(home)
    try:
        with pytest.raises(grpc.RpcError) as err:
            again.stub.SubmitReports(pb.ReportBatch(), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        again.close()
    assert before is not None


def test_reports_are_idempotent(gateway, tmp_path):
    home = tmp_path / "agent"
    device_id = enroll_agent(home, gateway, _token())
    client = StreamClient(home)
    now = timezone.now()
    started, finished = pb.JobResult().started_at, pb.JobResult().finished_at
    started.FromDatetime(now)
    finished.FromDatetime(now)
    result = pb.JobResult(
        job_id="job-1",
        kind="backup",
        state="succeeded",
        snapshot_id="abc123",
        stats_json='{"bytes_added": 10, "total_files": 2, "total_bytes": 20}',
        started_at=started,
        finished_at=finished,
    )
    batch = pb.ReportBatch(reports=[pb.Report(idempotency_key="result:job-1", result=result)])
    try:
        for _ in range(3):  # the outbox replays after a lost acknowledgement
            ack = client.stub.SubmitReports(batch, timeout=10)
            assert list(ack.accepted_keys) == ["result:job-1"]
    finally:
        client.close()
    assert JobRun.objects.filter(device_id=device_id).count() == 1
    assert DailyJobStats.objects.get(day=now.date()).succeeded == 1
    device = Device.objects.get(pk=device_id)
    assert device.last_success_at is not None
    assert device.snapshots.get().snapshot_id == "abc123"


def test_celery_delivers_a_command_to_the_gateway_holding_the_stream(
    gateway, celery_worker, tmp_path
):
    from console.jobs.services import request_backup

    home = tmp_path / "agent"
    device_id = enroll_agent(home, gateway, _token())
    client = StreamClient(home).connect()
    try:
        assert client.recv().WhichOneof("body") == "welcome"
        wait_for(
            lambda: DeviceConnection.objects.filter(device_id=device_id, online=True).exists(),
            10,
            "the stream to register",
        )
        command = request_backup(SYSTEM, Device.objects.get(pk=device_id))
        msg = client.recv_until(lambda m: m.command_id == str(command.pk))
        assert msg.WhichOneof("body") == "run_job" and msg.run_job.kind == "backup"
        wait_for(lambda: Command.objects.get(pk=command.pk).state == CommandState.SENT, 10, "sent")
        client.send(pb.AgentMessage(ack=pb.CommandAck(command_id=str(command.pk), accepted=True)))
        wait_for(
            lambda: Command.objects.get(pk=command.pk).state == CommandState.ACKNOWLEDGED,
            10,
            "acknowledged",
        )
    finally:
        client.close()


def test_certificate_renewal_keeps_the_old_one_until_the_new_one_is_used(gateway, tmp_path):
    from agent.daemon import channel
    from agent.daemon.enroll import certificate_days_left, renew_certificate
    from agent.daemon.home import AgentHome

    home = tmp_path / "agent"
    device_id = enroll_agent(home, gateway, _token())
    h = AgentHome(home)
    old = h.tls_material()
    assert 390 < certificate_days_left(h) < 398
    from console.core import pki as _pki

    enrolled_until = Device.objects.get(pk=device_id).cert_expires_at
    assert enrolled_until == _pki.not_after_from_pem(old[2])

    def submit(material):
        with grpc.secure_channel(gateway.address, channel.mtls_credentials(*material)) as ch:
            return pb_grpc.AgentGatewayStub(ch).SubmitReports(pb.ReportBatch(), timeout=10)

    with grpc.secure_channel(gateway.address, channel.mtls_credentials(*old)) as ch:
        renew_certificate(h, pb_grpc.AgentGatewayStub(ch))
    new = h.tls_material()
    assert new[1] != old[1] and new[2] != old[2]
    assert (home / "device.key").stat().st_mode & 0o077 == 0
    submit(old)  # a lost renewal answer must not lock the device out
    Device.objects.filter(pk=device_id).update(cert_expires_at=None)
    submit(new)  # first use of the new certificate pins it
    with pytest.raises(grpc.RpcError) as err:
        submit(old)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    from console.core import pki

    device = Device.objects.get(pk=device_id)
    assert device.cert_fingerprint == pki.fingerprint(new[2])
    # the alerts' "certificate about to expire" reads the promoted one's notAfter
    assert device.cert_expires_at == pki.not_after_from_pem(new[2])


def test_two_gateways_commands_reach_the_one_holding_each_stream(
    service_env, celery_worker, tmp_path, settings
):
    """Several gateway processes (as behind a TCP load balancer): the Redis
    registry routes each command to the instance holding that device."""
    from console.gateway.registry import Registry
    from console.jobs.services import request_backup

    env = {
        **service_env,
        "CAIRN_HEARTBEAT_FLUSH_SECONDS": "0.5",
        "CAIRN_GATEWAY_SWEEP_SECONDS": "600",
    }
    gws = [Gateway(env, tmp_path / f"gw{i}.log").start() for i in range(2)]
    clients = []
    try:
        token = _token(uses=2)
        devices = []
        for i, gw in enumerate(gws):
            home = tmp_path / f"agent{i}"
            devices.append(enroll_agent(home, gw, token))
            client = StreamClient(home, address=gw.address).connect()
            assert client.recv().WhichOneof("body") == "welcome"
            clients.append(client)
        settings.REDIS_KEY_PREFIX = service_env["CAIRN_REDIS_PREFIX"]
        registry = Registry()
        wait_for(
            lambda: all(registry.locate(d) for d in devices), 15, "both streams in the registry"
        )
        instances = {registry.locate(d) for d in devices}
        assert len(instances) == 2  # one device per gateway instance
        # The database sweep is effectively off (600 s): delivery must go
        # through Redis to the right instance.
        for device_id, client in zip(devices, clients, strict=True):
            command = request_backup(SYSTEM, Device.objects.get(pk=device_id))
            msg = client.recv_until(lambda m, c=command: m.command_id == str(c.pk))
            assert msg.run_job.kind == "backup"
    finally:
        for c in clients:
            c.close()
        for gw in gws:
            gw.stop()
