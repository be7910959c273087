"""Job outcomes an admin can read (issue 17): "Succeeded with inconsistent
files" in the jobs list as on the job page, and the environment notice (no
snapshot provider) once on the device page, not as a warning of every job."""

from __future__ import annotations

from django.urls import reverse

from console.jobs import services as jobs
from console.jobs.models import JobRun

NOTICE = (
    "no snapshot for /home/ana: no snapshot provider; files read live with consistent-read checks"
)


def report(device, key, *, warnings=(), stats=None):
    return jobs.record_job_result(
        device.pk, key, ok=True, warnings=list(warnings), stats=stats or {}, snapshot_id=key
    )


def test_environment_notice_is_not_a_warning_and_shows_once_on_the_device(small_fleet, ui):
    device = small_fleet.devices[0]
    for i in range(3):
        run = report(device, f"run-{i}", warnings=[NOTICE, "permission denied: /home/ana/x"])
    assert run.warnings == ["permission denied: /home/ana/x"] and run.warnings_count == 1
    assert run.stats["environment_notices"] == [NOTICE]

    admin = ui("admin")
    job_page = admin.get(reverse("job-detail", args=[run.pk])).content.decode()
    assert "permission denied" in job_page and "no snapshot provider" not in job_page
    listing = admin.get(reverse("job-list")).content.decode()
    assert "no snapshot provider" not in listing
    page = admin.get(reverse("device-detail", args=[device.pk])).content.decode()
    assert page.count("no snapshot provider") == 1
    assert 'data-testid="environment-notice"' in page

    # a later backup with a snapshot provider: the notice is gone
    report(device, "run-later", warnings=[])
    page = admin.get(reverse("device-detail", args=[device.pk])).content.decode()
    assert "no snapshot provider" not in page


def test_notice_like_text_from_a_hostile_agent_is_bounded(small_fleet):
    device = small_fleet.devices[0]
    many = [
        f"no snapshot for /p{i}: x; files read live with consistent-read checks" for i in range(50)
    ]
    run = report(device, "many", warnings=many)
    assert run.warnings_count == 0 and len(run.stats["environment_notices"]) == 20


def test_jobs_list_shows_succeeded_with_inconsistent_files(small_fleet, ui):
    device = small_fleet.devices[0]
    torn = report(
        device,
        "torn",
        stats={"inconsistent_files": ["/home/ana/db.sqlite"], "inconsistent_count": 1},
    )
    clean = report(device, "clean", stats={"inconsistent_files": [], "inconsistent_count": 0})
    hostile = report(device, "hostile", stats={"inconsistent_count": "many"})
    listing = ui("auditor").get(reverse("job-list")).content.decode()
    assert listing.count("Succeeded with inconsistent files") == 1
    rows = {r.pk: r for r in JobRun.objects.filter(pk__in=[torn.pk, clean.pk, hostile.pk])}
    assert len(rows) == 3
    # the torn run's row carries the label; the others read plain "Succeeded"
    row = listing.split(reverse("job-detail", args=[torn.pk]))[1].split("</tr>")[0]
    assert "Succeeded with inconsistent files" in row
    row = listing.split(reverse("job-detail", args=[hostile.pk]))[1].split("</tr>")[0]
    assert "Succeeded" in row and "inconsistent" not in row


def test_an_agents_own_verify_shows_its_plain_result(small_fleet, ui, api):
    """The bulk verify still runs the agent's check: no console figures for it."""
    device = small_fleet.devices[0]
    run = jobs.record_job_result(
        device.pk, "agent-verify", ok=True, kind="verify", stats={"damaged_files": "lots"}
    )
    page = ui("auditor").get(reverse("job-detail", args=[run.pk])).content.decode()
    assert "packs read whole" not in page and "damaged_files: lots" in page
    assert api("auditor").get(f"/api/v1/jobs/{run.pk}/").json()["verification"] is None
    hostile = jobs.record_job_result(
        device.pk,
        "agent-verify-2",
        ok=True,
        kind="verify",
        stats={"bytes_read": "x", "damaged_files": [{"path": 5}, "s", {"path": "/a" * 5000}]},
    )
    body = api("auditor").get(f"/api/v1/jobs/{hostile.pk}/").json()["verification"]
    assert body["bytes_read"] == 0 and len(body["damaged_files"]) == 1
    assert len(body["damaged_files"][0]["path"]) == 1024
