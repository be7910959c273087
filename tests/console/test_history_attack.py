"""Issue 10, item 2: a compromised device must not erase its own history.

The review's attack, replayed against moto S3: 6 real backups (their results
received by the console), then a flood of empty snapshots written with the
device's own repository key: 142 dated 2099 onward, 3 dated 2001, and 20
dated "now" with no backup result behind them. Two real maintenance passes (the second past
the prune grace period, so a sweep deletes what the first marked) must keep
every real snapshot and its packs, and flag the 2099 and 2001 ones as
suspicious."""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest

from agent.engine.backup import run_backup
from agent.engine.check import run_check
from agent.engine.prune import DEFAULT_GRACE
from agent.engine.repository import Repository
from agent.engine.restore import run_restore
from agent.engine.snapshot import Snapshot as EngineSnapshot
from console.api.serializers import DeviceDetailSerializer
from console.audit.models import AuditEvent
from console.audit.services import SYSTEM
from console.core.keys import org_key
from console.fleet import services as fleet
from console.jobs import services as jobs
from console.jobs.models import JobState
from console.policies import services as policies
from console.policies import spec as specs
from console.storage import maintenance, targets
from console.storage.models import ObservedSnapshot
from console.storage.targets import bootstrap_repository

DEVICE_KEY = os.urandom(32)


@pytest.fixture
def s3_settings(settings, s3_server, s3_bucket, tmp_path):
    settings.S3_ENDPOINT = s3_server.endpoint
    settings.S3_BUCKET = s3_bucket
    settings.S3_ACCESS_KEY = s3_server.access_key
    settings.S3_SECRET_KEY = s3_server.secret_key
    settings.CAIRN_ORG = "acme"
    settings.ORG_KEY_FILE = tmp_path / "keys" / "org.key"
    return settings


def enrolled(keep_last: int):
    group = fleet.create_group(SYSTEM, "Finance")
    _, token = fleet.create_enrollment_token(SYSTEM, "t", group, max_uses=5)
    dev = fleet.enroll_device(token, hostname="pc-001", os="linux")
    spec = specs.default_spec()
    spec["retention"] = {k: 0 for k in spec["retention"]} | {"keep_last": keep_last}
    policy = policies.create_policy(SYSTEM, f"Keep {keep_last}", spec)
    policies.assign_policy(SYSTEM, policy, group, 100)
    bootstrap_repository(targets.target(), str(dev.pk), DEVICE_KEY)
    return dev


@pytest.fixture
def device(db, s3_settings):
    return enrolled(10)


def device_repo(dev) -> Repository:
    """The repository as the device opens it: its own key."""
    return Repository.open(targets.admin_store(targets.target(), str(dev.pk)), key=DEVICE_KEY)


def real_backup(dev, src, n: int) -> str:
    (src / f"file-{n}").write_bytes(os.urandom(150 * 1024))
    sid = run_backup(device_repo(dev), [str(src)], hostname="pc-001", workers=2).snapshot_id
    # what the gateway does with the agent's result report
    jobs.record_job_result(
        dev.pk, f"{dev.pk}:{uuid.uuid4()}", ok=True, snapshot_id=sid, stats={"bytes_added": 1}
    )
    return sid


def forge(repo, tree: str, paths, when: dt.datetime) -> str:
    return repo.save_snapshot(
        EngineSnapshot(
            tree=tree,
            paths=paths,
            hostname="pc-001",
            time=when.isoformat().replace("+00:00", "Z"),
        )
    )


def test_a_flood_of_forged_snapshots_cannot_erase_real_history(device, tmp_path, admin_client):
    src = tmp_path / "src"
    src.mkdir()
    real = [real_backup(device, src, n) for n in range(6)]
    repo = Repository.open(targets.admin_store(targets.target(), str(device.pk)), key=org_key())
    packs_before = set(repo.store.list("data/"))

    # The attacker: an empty backup gives an empty tree, then forged snapshots.
    empty = tmp_path / "empty"
    empty.mkdir()
    hostile = device_repo(device)
    decoy = run_backup(hostile, [str(empty)], hostname="pc-001", workers=1)
    tree = hostile.load_snapshot(decoy.snapshot_id).tree
    future = [
        forge(hostile, tree, [str(src)], dt.datetime(2099, 1, 1, tzinfo=dt.UTC) + dt.timedelta(i))
        for i in range(142)
    ]
    now_dated = [forge(hostile, tree, [str(src)], dt.datetime.now(dt.UTC)) for _ in range(20)]
    backdated = [
        forge(hostile, tree, [str(src)], dt.datetime(2001, 1, 1, tzinfo=dt.UTC) + dt.timedelta(i))
        for i in range(3)
    ]

    first = maintenance.maintain_device(str(device.pk))
    assert first.state == JobState.SUCCEEDED, first.error
    later = dt.datetime.now(dt.UTC) + DEFAULT_GRACE + dt.timedelta(minutes=1)
    second = maintenance.maintain_device(str(device.pk), now=later)
    assert second.state == JobState.SUCCEEDED, second.error

    left = {s.id for s in repo.snapshots()}
    assert set(real) <= left, "a real snapshot was forgotten"
    assert set(future + backdated) <= left  # kept: evidence, not forgotten
    # the plausible-looking flood is judged like any snapshot: keep_last 10
    # keeps the newest, but never at the expense of the 6 observed good
    assert set(first.stats["forget"]["protected_ids"]) == set(real)
    assert set(now_dated + [decoy.snapshot_id]) - left
    assert set(repo.store.list("data/")) >= packs_before, "a pack of real data was deleted"
    assert run_check(Repository.open(repo.store, key=org_key()), read_data=True).ok
    run_restore(repo, real[0], str(tmp_path / "restore"))
    assert (tmp_path / "restore" / str(src).lstrip("/") / "file-0").read_bytes() == (
        src / "file-0"
    ).read_bytes()

    flagged = ObservedSnapshot.objects.filter(device=device, suspicious=True)
    assert set(flagged.values_list("snapshot_id", flat=True)) == set(future + backdated)
    reasons = dict(flagged.values_list("snapshot_id", "suspicious_reason"))
    assert "after it was stored" in reasons[future[0]]
    assert "long before it was stored" in reasons[backdated[0]]
    assert sorted(first.stats["observed"]["suspicious"]) == sorted(future + backdated)
    event = AuditEvent.objects.get(action="device.suspicious_snapshots")
    assert event.target_id == str(device.pk) and event.after["count"] == 145
    # flagged once, not again by the second pass
    assert AuditEvent.objects.filter(action="device.suspicious_snapshots").count() == 1
    assert ObservedSnapshot.objects.filter(device=device, job_run__isnull=False).count() == 6
    assert DeviceDetailSerializer(device).data["suspicious_snapshots"] == 145
    page = admin_client.get(f"/devices/{device.pk}/").content.decode()
    assert "145 kept, not counted by retention" in page and "it was stored" in page


def test_the_agent_time_never_decides_on_the_console_path(db, s3_settings, tmp_path):
    """keep_last 1, two snapshots: the older one claims (within the clock
    skew tolerated) to be newer. By the agent's time the newest real backup
    would be forgotten; by observed time the claim changes nothing."""
    device = enrolled(1)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(1024))
    repo = device_repo(device)
    first = repo.load_snapshot(run_backup(repo, [str(src)], hostname="pc-001").snapshot_id)
    liar = forge(repo, first.tree, [str(src)], dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10))
    repo.store.delete(f"snapshots/{first.id}")
    newest = real_backup(device, src, 1)

    run = maintenance.maintain_device(str(device.pk))
    assert run.state == JobState.SUCCEEDED, run.error
    assert run.stats["forget"]["forgotten_ids"] == [liar]
    assert {s.id for s in repo.snapshots()} == {newest}
    assert not ObservedSnapshot.objects.filter(snapshot_id=liar).exists()
