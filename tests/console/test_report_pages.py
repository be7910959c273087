"""The Reports pages: the compliance report on screen for a chosen period and
scope (totals, chart, device rows, controls, CSV/PDF links), the schedules
(Admin manages, Auditor reads) and the past reports with their digests and
byte-exact downloads."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import pytest

from console.audit.models import AuditEvent
from console.reports import compliance, scheduling
from console.reports.compliance import Scope, build_compliance_report
from console.reports.schedules import ReportFile, ReportSchedule
from tests.console import report_fleet
from tests.console.conftest import enroll

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(small_fleet):
    return report_fleet.build(enroll, small_fleet.token_plaintext, 6, days=10)


def test_report_on_screen(ui, seeded, monkeypatch):
    # the digest covers the generation time (to the second): hold the clock
    at = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setattr(compliance.timezone, "now", lambda: at)
    r = ui("auditor").get(f"/reports/?start={seeded.start}&end={seeded.end}")
    assert r.status_code == 200
    html = r.content.decode()
    expected = build_compliance_report(seeded.start, seeded.end, Scope.all(), now=at)
    for device in seeded.devices:
        if device.pk != seeded.hostile.pk:
            assert device.hostname in html
    assert "&lt;b&gt;evil&lt;/b&gt;" in html and "<b>evil</b>" not in html  # a PC's text stays text
    assert expected.digest in html  # same data, same digest as the files
    for control in ("A.8.13", "A1.2", "A1.3", "164.308(a)(7)(ii)(A)", "164.308(a)(7)(ii)(D)"):
        assert control in html
    assert "never backed up" in html and "12.5 s" in html
    assert f"from={seeded.start}&amp;to={seeded.end}&amp;format=pdf" in html
    assert 'id="report-chart"' in html and html.count('class="bar"') == 6


def test_report_scope_and_default_period(ui, seeded, small_fleet):
    client = ui("admin")
    assert client.get("/reports/").status_code == 200  # the last 30 closed days
    r = client.get(
        f"/reports/?start={seeded.start}&end={seeded.end}&group={small_fleet.other_group.pk}"
    )
    assert "No device in this scope" in r.content.decode()


def test_bad_period_is_explained_not_a_500(ui, seeded):
    r = ui("admin").get(f"/reports/?start={seeded.end}&end={seeded.start}")
    assert r.status_code == 200
    assert (
        "before it starts" in r.content.decode() and 'id="report-totals"' not in r.content.decode()
    )
    r = ui("admin").get(f"/reports/?start={date.today()}&end={date.today()}")
    assert "closed days" in r.content.decode()


def test_operator_sees_no_reports(ui, seeded):
    for url in ("/reports/", "/reports/schedules/", "/reports/past/"):
        assert ui("operator").get(url).status_code == 403


def test_schedules_managed_by_admin(ui, small_fleet):
    admin = ui("admin")
    body = {
        "name": "Quarterly?",
        "frequency": "monthly",
        "scope_kind": "group",
        "group": small_fleet.group.pk,
    }
    r = admin.post("/reports/schedules/", {**body, "recipients": "cfo@example.com\nnot-an-address"})
    assert r.status_code == 200 and "Not an e-mail address" in r.content.decode()
    r = admin.post(
        "/reports/schedules/",
        {**body, "recipients": "cfo@example.com, audit@example.com", "enabled": "on"},
    )
    assert r.status_code == 302
    schedule = ReportSchedule.objects.get()
    assert (
        schedule.recipients == ["cfo@example.com", "audit@example.com"]
        and schedule.group == small_fleet.group
    )

    auditor = ui("auditor")
    page = auditor.get("/reports/schedules/").content.decode()
    assert "Quarterly?" in page and "Group Finance" in page and "New schedule" not in page
    assert (
        auditor.post(f"/reports/schedules/{schedule.pk}/", {"action": "delete"}).status_code == 403
    )

    r = admin.post(
        f"/reports/schedules/{schedule.pk}/",
        {**body, "frequency": "weekly", "recipients": "x@example.com"},
    )
    assert r.status_code == 302
    schedule.refresh_from_db()
    assert schedule.frequency == "weekly" and schedule.enabled is False  # unticked
    assert admin.post(f"/reports/schedules/{schedule.pk}/", {"action": "delete"}).status_code == 302
    assert not ReportSchedule.objects.exists()
    via_ui = set(AuditEvent.objects.filter(via="ui").values_list("action", flat=True))
    assert {"report_schedule.create", "report_schedule.update", "report_schedule.delete"} <= via_ui


def test_past_reports_list_and_download(ui, seeded):
    scheduling.create_schedule(
        scheduling.SYSTEM,
        scheduling.ScheduleInput("Weekly", "weekly", recipients=("a@example.com",)),
    )
    scheduling.run_due_schedules(date.today())
    stored = ReportFile.objects.get()
    auditor = ui("auditor")
    page = auditor.get("/reports/past/").content.decode()
    assert stored.record.sha256 in page and stored.record.report_digest in page and "Weekly" in page
    r = auditor.get(f"/reports/past/{stored.pk}/download/")
    assert r.status_code == 200 and r["Content-Type"] == "application/pdf"
    assert hashlib.sha256(r.content).hexdigest() == stored.record.sha256
    assert auditor.get("/reports/past/999999/download/").status_code == 404
    detail = ui("admin").get(f"/reports/schedules/{stored.schedule_id}/").content.decode()
    assert stored.record.sha256 in detail
