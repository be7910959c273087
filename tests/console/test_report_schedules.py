"""Scheduled compliance reports: periods, validation, the beat run that
generates each due period once, stores it with its digest and e-mails the
PDF (Django's test outbox; a refused SMTP connection on a real socket keeps
the report and the error), scope by group, and the audit trail."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from console.audit.models import AuditEvent
from console.audit.services import SYSTEM
from console.fleet import services as fleet_services
from console.reports import scheduling, tasks
from console.reports.models import GeneratedReport
from console.reports.schedules import ReportFile, ReportSchedule
from console.reports.scheduling import ScheduleInput, last_closed_period
from tests.console import report_fleet
from tests.console.conftest import enroll
from tests.support import free_port

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "frequency, today, expected",
    [
        ("weekly", date(2026, 12, 2), (date(2026, 11, 23), date(2026, 11, 29))),  # a Wednesday
        ("weekly", date(2026, 11, 30), (date(2026, 11, 23), date(2026, 11, 29))),  # a Monday
        ("monthly", date(2026, 3, 15), (date(2026, 2, 1), date(2026, 2, 28))),
        ("monthly", date(2028, 3, 1), (date(2028, 2, 1), date(2028, 2, 29))),  # leap year
        ("monthly", date(2027, 1, 1), (date(2026, 12, 1), date(2026, 12, 31))),
    ],
)
def test_last_closed_period(frequency, today, expected):
    assert last_closed_period(frequency, today) == expected


def test_bad_input_is_refused_with_field_errors(small_fleet):
    with pytest.raises(ValidationError) as e:
        scheduling.create_schedule(
            SYSTEM,
            ScheduleInput(name="", frequency="daily", scope_kind="group", recipients=("not-mail",)),
        )
    errors = e.value.message_dict
    assert set(errors) == {"name", "frequency", "group", "recipients"}
    assert "not-mail" in errors["recipients"][0]
    with pytest.raises(ValidationError, match="At most 50"):
        scheduling.create_schedule(
            SYSTEM,
            ScheduleInput("x", "weekly", recipients=tuple(f"a{i}@example.com" for i in range(51))),
        )
    assert not ReportSchedule.objects.exists()


@pytest.fixture
def history(small_fleet):
    """43 devices with 14 closed days of history ending yesterday; group
    'Laptops' holds three of them (set before the history was filled)."""

    def laptops(devices):
        group = fleet_services.create_group(SYSTEM, "Laptops")
        fleet_services.add_devices_to_group(SYSTEM, group, devices[2:5])

    return report_fleet.build(enroll, small_fleet.token_plaintext, 40, days=14, prepare=laptops)


def _today_after(period_end: date) -> date:
    return period_end + timedelta(days=1)


def test_due_schedule_is_generated_once_stored_and_mailed(history, admin_actor):
    laptops = scheduling.DeviceGroup.objects.get(name="Laptops")
    schedule = scheduling.create_schedule(
        admin_actor,
        ScheduleInput(
            "Weekly laptops",
            "weekly",
            scope_kind="group",
            group=laptops,
            recipients=("auditor@example.com", "ciso@example.com", "AUDITOR@example.com"),
        ),
    )
    assert schedule.recipients == ["auditor@example.com", "ciso@example.com"]  # de-duplicated
    today = date.today()
    start, end = last_closed_period("weekly", today)

    sent = scheduling.run_due_schedules(today)

    assert len(sent) == 1 and len(mail.outbox) == 1
    stored = ReportFile.objects.get()
    kept = stored.record
    content = bytes(stored.content)
    assert content.startswith(b"%PDF-") and kept.format == "pdf"
    assert kept.sha256 == hashlib.sha256(content).hexdigest() and kept.size == len(content)
    assert (kept.start, kept.end) == (start, end)
    assert kept.scope.startswith("group Laptops")
    message = mail.outbox[0]
    assert message.to == ["auditor@example.com", "ciso@example.com"]
    assert kept.sha256 in message.body and kept.report_digest in message.body
    (name, attached, mimetype) = message.attachments[0]
    assert mimetype == "application/pdf" and attached == content and name.endswith(f"{end}.pdf")
    assert stored.emailed_to == message.to and stored.email_error == ""
    schedule.refresh_from_db()
    assert schedule.last_period_end == end

    # the same period is never sent twice; the next period is
    assert scheduling.run_due_schedules(today) == []
    assert scheduling.run_due_schedules(today + timedelta(days=7))
    assert len(mail.outbox) == 2 and ReportFile.objects.count() == 2

    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"report_schedule.create", "report.export", "report.email"} <= actions


def test_group_scope_holds_only_its_devices(history):
    laptops = scheduling.DeviceGroup.objects.get(name="Laptops")
    schedule = scheduling.create_schedule(
        SYSTEM,
        ScheduleInput(
            "L", "weekly", scope_kind="group", group=laptops, recipients=("a@example.com",)
        ),
    )
    start, end = last_closed_period("weekly", date.today())
    report = scheduling.compliance.build_compliance_report(
        start, end, scheduling.scope_of(schedule)
    )
    members = sorted(laptops.devices.values_list("hostname", flat=True))
    assert len(members) == 3 and sorted(d.hostname for d in report.devices) == members


def test_mail_failure_keeps_the_report_and_the_error(history, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 5
    scheduling.create_schedule(
        SYSTEM, ScheduleInput("All", "monthly", recipients=("a@example.com",))
    )
    today = date.today()
    scheduling.run_due_schedules(today)
    stored = ReportFile.objects.get()
    assert "ConnectionRefused" in stored.email_error and stored.emailed_to == []
    assert GeneratedReport.objects.filter(pk=stored.record_id).exists()
    assert ReportSchedule.objects.get().last_period_end == last_closed_period("monthly", today)[1]


def test_deleted_scope_is_reported_not_widened(history):
    laptops = scheduling.DeviceGroup.objects.get(name="Laptops")
    schedule = scheduling.create_schedule(
        SYSTEM,
        ScheduleInput(
            "L", "weekly", scope_kind="group", group=laptops, recipients=("a@example.com",)
        ),
    )
    fleet_services.delete_group(SYSTEM, laptops)
    assert scheduling.run_due_schedules(date.today()) == []
    schedule.refresh_from_db()
    assert "group was deleted" in schedule.last_error and schedule.last_period_end is None
    assert not ReportFile.objects.exists() and mail.outbox == []


def test_disabled_schedule_and_changes_are_audited(small_fleet, admin_actor):
    schedule = scheduling.create_schedule(
        admin_actor, ScheduleInput("M", "monthly", recipients=("a@example.com",))
    )
    scheduling.update_schedule(
        admin_actor,
        schedule,
        ScheduleInput("M", "monthly", recipients=("b@example.com",), enabled=False),
    )
    assert scheduling.run_due_schedules(date.today()) == []
    update = AuditEvent.objects.get(action="report_schedule.update")
    assert update.before["recipients"] == ["a@example.com"] and update.after["enabled"] is False
    assert update.actor_name == "admin"
    scheduling.delete_schedule(admin_actor, schedule)
    assert AuditEvent.objects.filter(action="report_schedule.delete").exists()


@pytest.fixture
def admin_actor(users):
    return scheduling.Actor(user=users["admin"], via="ui")


def test_beat_task_runs_the_due_schedules(history, settings):
    assert settings.CELERY_BEAT_SCHEDULE["report-schedules"]["task"] == "reports.run_due_schedules"
    scheduling.create_schedule(SYSTEM, ScheduleInput("W", "weekly", recipients=("a@example.com",)))
    assert tasks.run_due_schedules.apply().get() == 1
    assert tasks.run_due_schedules.apply().get() == 0  # the period is sent once
    assert len(mail.outbox) == 1
