"""Restore onto another device, the agent's side (issue 11): a real gateway
process on moto's S3; device A backs up and is revoked; the console opens a
restore access and builds the command for device B exactly as the gateway
writes it to B's stream; B's daemon opens A's repository with the one-time
key through read grants of A's prefix, maps A's profile onto its own (the
profile simulated by HOME) and restores byte for byte. The job's result
closes the access; afterwards the key and the grants open nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.daemon import jobs
from agent.daemon import wire as agent_wire
from agent.daemon.daemon import Daemon
from agent.daemon.home import AgentHome
from console.audit.services import SYSTEM
from console.fleet import services as fleet
from console.fleet.models import Device
from console.fleet.services import create_enrollment_token
from console.gateway import wire
from console.gateway.services import reports
from console.jobs.models import Snapshot
from console.restore import onto
from console.storage.models import RestoreAccess
from tests.gateway.harness import enroll_agent

pytestmark = pytest.mark.slow


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _daemon(home: Path, sources: list[str]) -> Daemon:
    d = Daemon(AgentHome(home))
    d.state.apply_policy(
        "rev-1",
        {
            "sources": {k: sources for k in ("linux", "macos", "windows")},
            "excludes": [],
            "schedule": {"every_hours": 1, "catch_up": True},
            "limits": {"pause_on_battery": False, "pause_on_metered": False},
            "open_files": "off",
        },
    )
    return d


@pytest.fixture
def two(s3_gateway, s3_server, s3_bucket, service_env, settings, tmp_path):
    settings.ORG_KEY_FILE = Path(service_env["CAIRN_VAR_DIR"]) / "keys" / "org.key"
    settings.S3_ENDPOINT = s3_server.endpoint
    settings.S3_BUCKET = s3_bucket
    settings.S3_ACCESS_KEY = s3_server.access_key
    settings.S3_SECRET_KEY = s3_server.secret_key
    settings.CAIRN_ORG = "acme"
    token = create_enrollment_token(SYSTEM, "two", max_uses=2)[1]
    ana, bob = tmp_path / "profiles" / "ana", tmp_path / "profiles" / "bob"
    docs = ana / "Documents"
    (docs / "Projects" / "deep").mkdir(parents=True)
    (docs / "Projects" / "plan.odt").write_bytes(os.urandom(400_000))
    (docs / "Projects" / "deep" / "notes.txt").write_bytes(b"minutes\n" * 20_000)
    (docs / "private.txt").write_bytes(b"not asked for")
    (bob / "Documents" / "Projects").mkdir(parents=True)
    (bob / "Documents" / "Projects" / "bob-own.txt").write_bytes(b"bob's own file")
    a_id = enroll_agent(tmp_path / "agent-a", s3_gateway, token)
    b_id = enroll_agent(tmp_path / "agent-b", s3_gateway, token)
    a = _daemon(tmp_path / "agent-a", [str(docs)])
    b = _daemon(tmp_path / "agent-b", [str(bob / "Documents")])
    try:
        yield (a, a_id, ana), (b, b_id, bob)
    finally:
        for d in (a, b):
            if d._sync_channel is not None:
                d._sync_channel.close()
            d.state.close()


def test_a_revoked_devices_folder_restored_onto_another_users_profile(two, monkeypatch):
    (a, a_id, ana), (b, b_id, bob) = two
    done = a._run_job(jobs.JobContext.new("backup", "manual"))
    assert done.state == "succeeded", done.error
    Snapshot.objects.create(
        device_id=a_id, snapshot_id=done.snapshot_id, paths=[str(ana / "Documents")]
    )
    fleet.revoke_device(SYSTEM, Device.objects.get(pk=a_id))

    cmd = onto.request_restore_onto(
        SYSTEM,
        Device.objects.get(pk=a_id),
        Device.objects.get(pk=b_id),
        done.snapshot_id,
        [str(ana / "Documents" / "Projects")],
        source_home=str(ana),
    )
    msg = wire.command_message(cmd)  # what the gateway writes to B's stream
    args = json.loads(msg.run_job.args_json)
    assert args["mapping"]["entries"] == [
        [str(ana / "Documents" / "Projects"), "{Documents}", "/Projects"]
    ]
    monkeypatch.setenv("HOME", str(bob))  # B's user profile
    if os.geteuid() == 0:  # the agent runs as root: bob gets his files
        for p in (bob, bob / "Documents", bob / "Documents" / "Projects"):
            os.chown(p, 4242, 4242)
    monkeypatch.delenv("XDG_DOCUMENTS_DIR", raising=False)
    ctx = jobs.JobContext.new("restore", "manual", command_id=str(cmd.pk), args=dict(args))
    out = b._run_job(ctx)
    assert out.state == "succeeded", (out.error, out.warnings)
    assert "key" not in ctx.args  # taken out of the arguments at once
    assert args["key"] not in json.dumps(out.stats) + out.error + "".join(out.warnings)
    want = _files(ana / "Documents" / "Projects")
    got = _files(bob / "Documents" / "Projects")
    assert {k: v for k, v in got.items() if k != "bob-own.txt"} == want
    assert got["bob-own.txt"] == b"bob's own file"  # what was there is kept
    assert not (bob / "Documents" / "private.txt").exists()  # only what was chosen
    assert not list(bob.rglob(".cairn-restore-*"))  # no staging left
    if os.geteuid() == 0:
        restored = [
            p for p in (bob / "Documents" / "Projects").rglob("*") if p.name != "bob-own.txt"
        ]
        assert restored and {(p.lstat().st_uid, p.lstat().st_gid) for p in restored} == {
            (4242, 4242)
        }
    assert out.stats["mapped"] == [
        {
            "source": str(ana / "Documents" / "Projects"),
            "destination": str(bob / "Documents/Projects"),
        }
    ]

    # the result, as the gateway ingests it, closes the access
    result = agent_wire.job_result(ctx, out, ctx.started + 1, "rev-1")
    reports._result(b_id, result)
    assert RestoreAccess.objects.get(pk=args["restore_access"]).closed_at is not None
    again = jobs.JobContext.new("restore", "manual", command_id="again", args=dict(args))
    with pytest.raises(Exception, match="restore access|PERMISSION_DENIED|denied"):
        refused = b._run_job(again)
        assert refused.state == "failed"
        raise RuntimeError(refused.error)


def test_a_replacement_takes_over_the_old_devices_history(two, s3_server, s3_bucket):
    from agent.engine.repository import Repository
    from agent.rpc import agent_pb2 as pb
    from console.audit.models import AuditEvent
    from console.core.keys import org_key
    from console.fleet.models import DeviceGroup
    from console.restore import takeover
    from console.storage import targets

    (a, a_id, ana), (b, b_id, bob) = two
    group = DeviceGroup.objects.create(name="Finance")
    Device.objects.get(pk=a_id).groups.add(group)
    # A's sources are B's profile folder too: a replacement backs up the same place
    b.state.apply_policy(
        "rev-1",
        {
            "sources": {k: [str(ana / "Documents")] for k in ("linux", "macos", "windows")},
            "excludes": [],
            "schedule": {"every_hours": 1, "catch_up": True},
            "limits": {"pause_on_battery": False, "pause_on_metered": False},
            "open_files": "off",
        },
    )
    (ana / "Documents" / "big.bin").write_bytes(os.urandom(3_000_000))
    first = a._run_job(jobs.JobContext.new("backup", "manual"))
    assert first.state == "succeeded", first.error
    Snapshot.objects.create(device_id=a_id, snapshot_id=first.snapshot_id)

    cmd = takeover.take_over(SYSTEM, Device.objects.get(pk=a_id), Device.objects.get(pk=b_id))
    assert cmd.kind == "takeover" and "key" not in cmd.payload
    old, new = Device.objects.get(pk=a_id), Device.objects.get(pk=b_id)
    assert old.revoked and list(new.groups.all()) == []  # not before B has its key
    assert list(Snapshot.objects.filter(device=new).values_list("snapshot_id", flat=True)) == [
        first.snapshot_id
    ]
    msg = wire.command_message(cmd)  # as written to B's stream
    wired = json.loads(msg.run_job.args_json)["key"]
    ev = AuditEvent.objects.get(action="device.takeover")
    assert wired not in json.dumps(ev.after) and ev.after["old_device"] == a_id
    b.outgoing = None
    b._run_job_command(
        str(cmd.pk), pb.RunJob(kind=msg.run_job.kind, args_json=msg.run_job.args_json)
    )
    acks = [(b_id, str(cmd.pk), True, "")]  # what the gateway batches
    assert takeover.finish_acknowledged(acks) == 1
    assert takeover.finish_acknowledged(acks) == 0  # once
    assert list(Device.objects.get(pk=b_id).groups.all()) == [group]

    # B's next backup reads the same files into the adopted repository: only
    # what changed is added
    (ana / "Documents" / "new.txt").write_bytes(b"changed on the new PC\n" * 100)
    nxt = b._run_job(jobs.JobContext.new("backup", "manual"))
    assert nxt.state == "succeeded", nxt.error
    total = sum(len(v) for v in _files(ana / "Documents").values())
    assert total > 3_400_000 and nxt.stats["bytes_added_raw"] < 100_000, nxt.stats
    store = targets.admin_store(targets.target(), b_id)
    try:
        ids = Repository.open(store, key=org_key()).snapshot_ids()
    finally:
        store.close()
    assert set(ids) == {first.snapshot_id, nxt.snapshot_id}

    # refused: itself, a replacement with backups of its own, a revoked one
    with pytest.raises(Exception, match="itself"):
        takeover.check(new, new)
    with pytest.raises(Exception, match="backups of its own"):
        takeover.check(old, new)
    with pytest.raises(Exception, match="revoked"):
        takeover.check(new, old)
