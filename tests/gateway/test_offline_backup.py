"""A PC that can reach object storage but no gateway still backs up: its
writes go through leased, write-once spool slots, it reads its repository
from its local view, and the console files the objects in place afterwards.
Real gateway process, moto's S3 server, the daemon's own job path."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agent.daemon import jobs, running
from agent.daemon.daemon import Daemon
from agent.daemon.home import AgentHome
from agent.engine.check import run_check
from agent.engine.repository import Repository
from agent.engine.restore import run_restore
from console.audit.services import SYSTEM
from console.fleet.models import Device
from console.fleet.services import create_enrollment_token
from tests.gateway.harness import enroll_agent

pytestmark = pytest.mark.slow


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _keys(s3_server, bucket: str, prefix: str) -> set[str]:
    client = s3_server.client()
    return {o.object_name for o in client.list_objects(bucket, prefix=prefix, recursive=True)}


@pytest.fixture
def enrolled(s3_gateway, s3_server, s3_bucket, service_env, settings, tmp_path):
    # The console side of this process sees the gateway's storage and key.
    settings.ORG_KEY_FILE = Path(service_env["CAIRN_VAR_DIR"]) / "keys" / "org.key"
    settings.S3_ENDPOINT = s3_server.endpoint
    settings.S3_BUCKET = s3_bucket
    settings.S3_ACCESS_KEY = s3_server.access_key
    settings.S3_SECRET_KEY = s3_server.secret_key
    settings.CAIRN_ORG = "acme"
    token = create_enrollment_token(SYSTEM, "offline", max_uses=1)[1]
    home = tmp_path / "agent"
    device_id = enroll_agent(home, s3_gateway, token)
    data = tmp_path / "Documents"
    (data / "mail").mkdir(parents=True)
    (data / "report.docx").write_bytes(os.urandom(300_000))
    (data / "mail" / "inbox.pst").write_bytes(os.urandom(2_500_000))
    daemon = Daemon(AgentHome(home))
    daemon.state.apply_policy(
        "rev-1",
        {
            "sources": {k: [str(data)] for k in ("linux", "macos", "windows")},
            "excludes": [],
            "schedule": {"every_hours": 1, "catch_up": True},
            "limits": {"pause_on_battery": False, "pause_on_metered": False},
            "open_files": "off",
        },
    )
    try:
        yield daemon, device_id, data
    finally:
        if daemon._sync_channel is not None:
            daemon._sync_channel.close()
        daemon.state.close()


def _backup(daemon: Daemon) -> jobs.JobOutcome:
    return daemon._run_job(jobs.JobContext.new("backup", "schedule"))


def test_backup_without_gateway_is_spooled_then_promoted_and_restorable(
    enrolled, s3_gateway, s3_server, s3_bucket, tmp_path
):
    from console.core.keys import org_key
    from console.storage import spool, targets

    daemon, device_id, data = enrolled
    prefix = f"acme/{device_id}/"

    # Online: a backup, then a lease of offline slots and a fresh view.
    first = _backup(daemon)
    assert first.state == "succeeded" and "spooled_objects" not in first.stats
    daemon.renew_offline_lease()
    lease = daemon.offline.lease
    assert lease.armed and lease.remaining == len(lease.slots) > 0
    row = Device.objects.get(pk=device_id)
    assert row.spool_lease_issued_at and row.spool_lease_expires_at > row.spool_lease_issued_at

    # The gateway goes away; the PC keeps changing files and backing up.
    s3_gateway.stop()
    (data / "report.docx").write_bytes(os.urandom(300_000))
    (data / "new.xlsx").write_bytes(b"quarter,revenue\n" * 5000)
    time.sleep(2.1)  # older than the engine's racy-timestamp margin at the next run
    second = _backup(daemon)
    assert second.state == "succeeded", second.error
    assert second.stats["spooled_objects"] >= 3  # data pack(s), tree pack, index, snapshot
    at_second = _files(data)
    spooled = _keys(s3_server, s3_bucket, prefix + "spool/")
    assert len(spooled) == 2 * second.stats["spooled_objects"]  # object + target each
    assert _keys(s3_server, s3_bucket, prefix + "snapshots/") == {
        f"{prefix}snapshots/{first.snapshot_id}"
    }

    # A second offline run builds on the first one's spooled index and snapshot.
    (data / "mail" / "inbox.pst").write_bytes(
        (data / "mail" / "inbox.pst").read_bytes()[:2_000_000] + os.urandom(10_000)
    )
    third = _backup(daemon)
    assert third.state == "succeeded", third.error
    assert third.stats["files_read"] == 1  # only the changed mailbox: parent was the spooled run
    assert third.stats["data_blobs_added"] <= 3  # and it deduplicated against spooled packs
    at_third = _files(data)

    # The console files the spooled objects in place (server-side copies).
    report = spool.promote(device_id)
    assert report.promoted == second.stats["spooled_objects"] + third.stats["spooled_objects"]
    assert not report.refused and not _keys(s3_server, s3_bucket, prefix + "spool/")

    # With the organisation key, as after a stolen laptop: everything is there.
    store = targets.admin_store(targets.target(), device_id)
    repo = Repository.open(store, key=org_key())
    assert {s.id for s in repo.snapshots()} == {
        first.snapshot_id,
        second.snapshot_id,
        third.snapshot_id,
    }
    assert run_check(repo, read_data=True).ok
    for snapshot_id, expected in ((second.snapshot_id, at_second), (third.snapshot_id, at_third)):
        target = tmp_path / f"restore-{snapshot_id[:8]}"
        run_restore(repo, snapshot_id, str(target))
        assert _files(target / data.relative_to("/")) == expected
    store.close()

    # Back online: the next backup sees the promoted objects and forgets they were pending.
    s3_gateway.start()
    daemon._sync_channel.close()
    daemon._sync_channel = daemon._sync_stub = None
    fourth = _backup(daemon)
    assert fourth.state == "succeeded" and "spooled_objects" not in fourth.stats
    assert daemon.offline.describe()["waiting_for_promotion"] == 0


def test_offline_backup_without_lease_or_beyond_it_fails_clearly_and_loses_nothing(
    enrolled, s3_gateway, s3_server, s3_bucket, monkeypatch
):
    daemon, device_id, data = enrolled
    first = _backup(daemon)
    assert first.state == "succeeded"

    s3_gateway.stop()
    # No lease taken yet: the run fails with the reason, nothing is written.
    with pytest.raises(Exception, match="no offline upload lease"):
        _backup(daemon)
    s3_gateway.start()
    daemon._sync_channel.close()
    daemon._sync_channel = daemon._sync_stub = None

    # A lease of two slots is used up by a run that needs more.
    monkeypatch.setattr(running, "OFFLINE_SLOTS", 2)
    daemon.renew_offline_lease()
    assert len(daemon.offline.lease.slots) == 2
    s3_gateway.stop()
    (data / "big.bin").write_bytes(os.urandom(40_000_000))  # several packs
    with pytest.raises(Exception, match="all 2 offline upload slots are used"):
        _backup(daemon)
    # The history written online is untouched.
    prefix = f"acme/{device_id}/"
    assert _keys(s3_server, s3_bucket, prefix + "snapshots/") == {
        f"{prefix}snapshots/{first.snapshot_id}"
    }
