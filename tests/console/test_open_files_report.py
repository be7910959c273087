"""Issue 15, items 2 and 6, end to end: real backups on a loop-mounted btrfs
with a busy mailbox (one through a snapshot, one read live and torn) are
reported through the gateway's report ingestion (untrusted JSON) and shown on
the job page, the device page and the API: which snapshot each source was
read from, "Succeeded with inconsistent files", and which files have no
consistent copy within the RPO and for how long."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from google.protobuf.timestamp_pb2 import Timestamp

from agent.daemon import jobs as agent_jobs
from agent.rpc import agent_pb2 as pb
from console.gateway.services import reports
from console.jobs import openfiles
from console.jobs.models import JobRun
from tests.agent.open_files.conftest import btrfs_mount  # noqa: F401 (fixture)
from tests.agent.open_files.test_busy_files_btrfs import MAILBOX_WRITER, make_repo
from tests.support import wait_until

MIB = 1024 * 1024


def _ts(at) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(at)
    return t


def ingest(device, job_id: str, outcome, at) -> JobRun:
    """What the daemon sends for a finished job (agent/daemon/daemon.py)."""
    result = pb.JobResult(
        job_id=job_id,
        kind="backup",
        trigger="manual",
        state=outcome.state,
        started_at=_ts(at - timedelta(seconds=5)),
        finished_at=_ts(at),
        snapshot_id=outcome.snapshot_id,
        warnings=outcome.warnings,
        stats_json=json.dumps(outcome.stats, default=str),
    )
    assert reports.ingest(str(device.pk), pb.Report(idempotency_key=job_id, result=result))
    return JobRun.objects.get(idempotency_key=reports.run_key(str(device.pk), job_id))


@pytest.fixture
def busy_mailbox(btrfs_mount):  # noqa: F811
    subprocess.run(["btrfs", "subvolume", "create", str(btrfs_mount / "home")], check=True,
                   capture_output=True)  # fmt: skip
    pst = btrfs_mount / "home" / "Outlook" / "archive.pst"
    pst.parent.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", MAILBOX_WRITER, str(pst), str(32 * MIB), "-1"])
    try:
        wait_until(lambda: Path(f"{pst}.ready").exists() or proc.poll() is not None, 30,
                   what="mailbox writer")  # fmt: skip
        assert proc.poll() is None
        Path(f"{pst}.ready").unlink()
        yield pst
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.django_db
def test_torn_copy_is_shown_as_such_with_how_long_no_consistent_copy_exists(
    busy_mailbox, tmp_path, small_fleet, ui, api
):
    pst, home = busy_mailbox, busy_mailbox.parent.parent
    device = small_fleet.devices[0]
    repo = make_repo(tmp_path / "repo")
    state = str(tmp_path / "state")

    def backup(mode: str):
        ctx = agent_jobs.JobContext.new("backup", "manual", args={"paths": [str(home)]})
        return agent_jobs.run_backup(ctx, repo, {"open_files": mode}, state_dir=state)

    good = backup("required")  # through a btrfs snapshot: consistent
    assert good.stats["inconsistent_count"] == 0
    for _ in range(6):  # read live while the writer stamps a page every millisecond
        torn = backup("off")
        if torn.stats["inconsistent_count"]:
            break
    assert torn.stats["inconsistent_files"] == [str(pst)], "the mailbox kept changing"

    now = timezone.now()
    good_run = ingest(device, "good", good, now - timedelta(days=3))  # older than the RPO
    torn_run = ingest(device, "torn", torn, now - timedelta(minutes=1))
    assert device.rpo == timedelta(hours=24)

    # The job pages: which snapshot was used, or that the copy is torn.
    page = ui("auditor").get(reverse("job-detail", args=[good_run.pk])).content.decode()
    snap_id = good.stats["point_in_time"]["sources"][0]["snapshot_ids"][0]
    assert "btrfs snapshot" in page and snap_id in page and "held " in page
    assert "Succeeded with inconsistent files" not in page
    page = ui("auditor").get(reverse("job-detail", args=[torn_run.pk])).content.decode()
    assert "Succeeded with inconsistent files" in page
    assert "1 stored torn" in page and str(pst) in page
    assert "read live (open-file mode is off)" in page

    # The device page: the mailbox has had no consistent copy for 3 days.
    page = ui("auditor").get(reverse("device-detail", args=[device.pk])).content.decode()
    assert "No consistent copy within the RPO" in page
    assert f"<code>{pst}</code>: for 72 h" in page
    assert "last consistent copy " + (now - timedelta(days=3)).strftime("%Y-%m-%d") in page

    # The API says the same.
    body = api("auditor").get(f"/api/v1/jobs/{torn_run.pk}/").json()
    assert body["outcome"] == "Succeeded with inconsistent files"
    assert body["inconsistent_files"] == {"count": 1, "files": [str(pst)]}
    assert body["point_in_time"]["sources"][0]["live"] == "open-file mode is off"
    body = api("auditor").get(f"/api/v1/jobs/{good_run.pk}/").json()
    assert body["outcome"] == "Succeeded"
    [source] = body["point_in_time"]["sources"]
    assert source["provider"] == "btrfs" and source["snapshot_ids"][0] == snap_id
    assert 0 < source["held_seconds"] < 60
    body = api("auditor").get(f"/api/v1/devices/{device.pk}/").json()
    [unprotected] = body["unprotected_files"]
    assert unprotected["path"] == str(pst)
    assert 3 * 86400 - 120 <= unprotected["seconds_without_consistent_copy"] <= 3 * 86400 + 120

    # A consistent copy within the RPO: the device no longer lists the file.
    ingest(device, "good-recent", good, now - timedelta(hours=2))
    assert openfiles.unprotected_files(device) == []
    page = ui("auditor").get(reverse("device-detail", args=[device.pk])).content.decode()
    assert "No consistent copy within the RPO" not in page


@pytest.mark.django_db
def test_hostile_open_file_statistics_are_checked_and_cut(small_fleet, api):
    # Statistics are agent data: wrong types are dropped, long text is cut.
    device = small_fleet.devices[0]
    stats = {
        "point_in_time": {
            "mode": "x" * 1000,
            "sources": [{"path": "p" * 5000, "provider": 7, "snapshot_ids": "nope",
                         "held_seconds": -3, "live": ["no"]}] * 80,
        },
        "inconsistent_files": ["a", 5, None, "b"],
        "inconsistent_count": True,
    }  # fmt: skip
    outcome = agent_jobs.JobOutcome("succeeded", snapshot_id="s1", stats=stats)
    run = ingest(device, "hostile", outcome, timezone.now())
    body = api("auditor").get(f"/api/v1/jobs/{run.pk}/").json()
    pit = body["point_in_time"]
    assert len(pit["mode"]) == 16 and len(pit["sources"]) == openfiles.MAX_SOURCES
    assert pit["sources"][0] == {"path": "p" * 500, "provider": "", "snapshot_ids": [],
                                 "held_seconds": None, "live": ""}  # fmt: skip
    assert body["inconsistent_files"] == {"count": 2, "files": ["a", "b"]}
    assert body["outcome"] == "Succeeded with inconsistent files"
