"""Report schedules and stored reports through the REST API: Admin manages,
Auditor reads and downloads, Operator sees neither; bad input is a 400 naming
the field; a download is the stored bytes exactly, audited."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest

from console.audit.models import AuditEvent
from console.reports import scheduling
from console.reports.schedules import ReportFile, ReportSchedule
from tests.console import report_fleet
from tests.console.conftest import enroll

pytestmark = pytest.mark.django_db

URL = "/api/v1/reports/schedules/"


def test_admin_manages_schedules_auditor_reads(api, small_fleet):
    admin, auditor, operator = api("admin"), api("auditor"), api("operator")
    body = {
        "name": "Finance monthly",
        "frequency": "monthly",
        "scope_kind": "group",
        "group": small_fleet.group.pk,
        "recipients": ["cfo@example.com"],
    }
    r = admin.post(URL, body, format="json")
    assert r.status_code == 201, r.content
    created = r.json()
    assert created["scope"] == "Group Finance" and created["format"] == "pdf"
    assert len(created["next_period"]) == 2

    assert auditor.get(URL).json()["results"][0]["name"] == "Finance monthly"
    assert auditor.post(URL, body, format="json").status_code == 403
    assert operator.get(URL).status_code == 403

    pk = created["id"]
    r = admin.put(
        f"{URL}{pk}/", {**body, "recipients": ["a@example.com", "b@example.com"]}, format="json"
    )
    assert r.status_code == 200 and r.json()["recipients"] == ["a@example.com", "b@example.com"]
    assert auditor.delete(f"{URL}{pk}/").status_code == 403
    assert admin.delete(f"{URL}{pk}/").status_code == 204
    assert not ReportSchedule.objects.exists()
    actions = list(AuditEvent.objects.filter(via="api").values_list("action", flat=True))
    assert {"report_schedule.create", "report_schedule.update", "report_schedule.delete"} <= set(
        actions
    )


@pytest.mark.parametrize(
    "change, field",
    [
        ({"recipients": ["not an address"]}, "recipients"),
        ({"recipients": []}, "recipients"),
        ({"frequency": "daily"}, "frequency"),
        ({"scope_kind": "group"}, "group"),
        ({"scope_kind": "policy", "policy": 999999}, "policy"),
        ({"name": "x" * 121}, "name"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, small_fleet, change, field):
    body = {"name": "S", "frequency": "weekly", "recipients": ["a@example.com"], **change}
    r = api("admin").post(URL, body, format="json")
    assert r.status_code == 400 and field in r.json(), r.content


def test_duplicate_name_is_a_400(api, small_fleet):
    body = {"name": "S", "frequency": "weekly", "recipients": ["a@example.com"]}
    assert api("admin").post(URL, body, format="json").status_code == 201
    r = api("admin").post(URL, body, format="json")
    assert r.status_code == 400 and "already exists" in r.json()["name"][0]


def test_past_reports_listed_and_downloaded_byte_for_byte(api, small_fleet):
    report_fleet.build(enroll, small_fleet.token_plaintext, 5, days=10)
    scheduling.create_schedule(
        scheduling.SYSTEM, scheduling.ScheduleInput("W", "weekly", recipients=("a@example.com",))
    )
    scheduling.run_due_schedules(date.today())
    stored = ReportFile.objects.get()

    auditor = api("auditor")
    listed = auditor.get("/api/v1/reports/past/").json()["results"]
    assert [r["id"] for r in listed] == [stored.pk]
    assert listed[0]["sha256"] == stored.record.sha256 and listed[0]["schedule"] == "W"
    assert listed[0]["emailed_to"] == ["a@example.com"]

    r = auditor.get(f"/api/v1/reports/past/{stored.pk}/download/")
    assert r.status_code == 200 and r["Content-Type"] == "application/pdf"
    body = b"".join(r.streaming_content) if r.streaming else r.content
    assert hashlib.sha256(body).hexdigest() == stored.record.sha256 == r["X-Report-SHA256"]
    assert stored.filename in r["Content-Disposition"]
    assert AuditEvent.objects.filter(action="report.download", actor_name="auditor").exists()

    assert api("operator").get(f"/api/v1/reports/past/{stored.pk}/download/").status_code == 403
    assert auditor.get("/api/v1/reports/past/999999/download/").status_code == 404
