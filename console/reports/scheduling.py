"""Scheduled compliance reports: managing schedules, generating the ones due
for their last closed period, storing and e-mailing them.

Periods are closed UTC periods: weekly is Monday to Sunday, monthly a
calendar month. A schedule is due when its last closed period ends after the
last period it generated; each period is generated once (the schedule row is
locked while it is generated, so two workers never send it twice). A failure
(e.g. the schedule's group was deleted) is kept on the schedule and the next
beat tries again; the stored report is kept even when e-mail fails, with the
error beside it.

Every change an admin makes is audited; so is every generated report
(actor ``system`` for the beat).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from console.audit.services import SYSTEM, Actor, record
from console.fleet.models import DeviceGroup
from console.policies.models import Policy
from console.reports import compliance, exports, history
from console.reports.schedules import (
    MAX_RECIPIENTS,
    Frequency,
    ReportFile,
    ReportSchedule,
    ScopeKind,
)

log = logging.getLogger(__name__)


# --- periods ------------------------------------------------------------------


def last_closed_period(frequency: str, today: date) -> tuple[date, date]:
    """The last whole period before ``today`` (both ends inclusive)."""
    if frequency == Frequency.WEEKLY:
        this_monday = today - timedelta(days=today.weekday())
        return this_monday - timedelta(days=7), this_monday - timedelta(days=1)
    if frequency == Frequency.MONTHLY:
        end = today.replace(day=1) - timedelta(days=1)
        return end.replace(day=1), end
    raise ValueError(f"unknown frequency {frequency!r}")


def is_due(schedule: ReportSchedule, today: date) -> bool:
    _, end = last_closed_period(schedule.frequency, today)
    return schedule.enabled and (schedule.last_period_end is None or schedule.last_period_end < end)


# --- managing schedules -----------------------------------------------------------


@dataclass(frozen=True)
class ScheduleInput:
    name: str
    frequency: str
    scope_kind: str = ScopeKind.ALL
    group: DeviceGroup | None = None
    policy: Policy | None = None
    recipients: tuple[str, ...] = ()
    enabled: bool = True


def clean_recipients(value) -> list[str]:
    """A list (or comma/newline separated text) of e-mail addresses, checked."""
    if isinstance(value, str):
        value = value.replace("\n", ",").replace(";", ",").split(",")
    addresses = []
    for raw in value or []:
        address = str(raw).strip()
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(
                {"recipients": [f"Not an e-mail address: {address[:80]!r}."]}
            ) from None
        if address.lower() not in (a.lower() for a in addresses):
            addresses.append(address)
    if not addresses:
        raise ValidationError({"recipients": ["At least one e-mail address is required."]})
    if len(addresses) > MAX_RECIPIENTS:
        raise ValidationError({"recipients": [f"At most {MAX_RECIPIENTS} recipients."]})
    return addresses


def _validated(data: ScheduleInput, instance: ReportSchedule | None = None) -> dict:
    errors: dict[str, list[str]] = {}
    name = (data.name or "").strip()
    if not name:
        errors["name"] = ["This field is required."]
    elif len(name) > 120:
        errors["name"] = ["At most 120 characters."]
    elif (
        ReportSchedule.objects.filter(name=name).exclude(pk=getattr(instance, "pk", None)).exists()
    ):
        errors["name"] = [f"A schedule named {name!r} already exists."]
    if data.frequency not in Frequency.values:
        errors["frequency"] = [f"One of {', '.join(Frequency.values)}."]
    if data.scope_kind not in ScopeKind.values:
        errors["scope_kind"] = [f"One of {', '.join(ScopeKind.values)}."]
    elif data.scope_kind == ScopeKind.GROUP and data.group is None:
        errors["group"] = ["A group scope needs a group."]
    elif data.scope_kind == ScopeKind.POLICY and data.policy is None:
        errors["policy"] = ["A policy scope needs a policy."]
    try:
        recipients = clean_recipients(list(data.recipients))
    except ValidationError as exc:
        errors.update(exc.message_dict)
        recipients = []
    if errors:
        raise ValidationError(errors)
    return {
        "name": name,
        "frequency": data.frequency,
        "scope_kind": data.scope_kind,
        "group": data.group if data.scope_kind == ScopeKind.GROUP else None,
        "policy": data.policy if data.scope_kind == ScopeKind.POLICY else None,
        "recipients": recipients,
        "enabled": bool(data.enabled),
        "format": "pdf",
    }


def schedule_state(schedule: ReportSchedule) -> dict:
    return {
        "name": schedule.name,
        "frequency": schedule.frequency,
        "scope": scope_label(schedule),
        "recipients": list(schedule.recipients),
        "format": schedule.format,
        "enabled": schedule.enabled,
    }


@transaction.atomic
def create_schedule(actor: Actor, data: ScheduleInput) -> ReportSchedule:
    schedule = ReportSchedule.objects.create(created_by=actor.user, **_validated(data))
    record(actor, "report_schedule.create", schedule, after=schedule_state(schedule))
    return schedule


@transaction.atomic
def update_schedule(actor: Actor, schedule: ReportSchedule, data: ScheduleInput) -> ReportSchedule:
    before = schedule_state(schedule)
    for field, value in _validated(data, schedule).items():
        setattr(schedule, field, value)
    schedule.last_error = ""
    schedule.save()
    record(actor, "report_schedule.update", schedule, before=before, after=schedule_state(schedule))
    return schedule


@transaction.atomic
def delete_schedule(actor: Actor, schedule: ReportSchedule) -> None:
    before = schedule_state(schedule)
    record(actor, "report_schedule.delete", schedule, before=before)
    schedule.delete()


# --- generating -------------------------------------------------------------------


class ScopeGone(Exception):
    """The schedule's group or policy no longer exists."""


def scope_label(schedule: ReportSchedule) -> str:
    if schedule.scope_kind == ScopeKind.GROUP:
        return f"Group {schedule.group.name}" if schedule.group else "Group (deleted)"
    if schedule.scope_kind == ScopeKind.POLICY:
        return f"Policy {schedule.policy.name}" if schedule.policy else "Policy (deleted)"
    return "All devices"


def scope_of(schedule: ReportSchedule) -> compliance.Scope:
    if schedule.scope_kind == ScopeKind.GROUP:
        if schedule.group is None:
            raise ScopeGone("the schedule's group was deleted")
        return compliance.Scope.group(schedule.group_id)
    if schedule.scope_kind == ScopeKind.POLICY:
        if schedule.policy is None:
            raise ScopeGone("the schedule's policy was deleted")
        return compliance.Scope.policy(schedule.policy_id)
    return compliance.Scope.all()


def _filename(schedule: ReportSchedule, start: date, end: date) -> str:
    slug = "".join(ch if ch.isalnum() else "-" for ch in scope_label(schedule).lower()).strip("-")[
        :60
    ]
    return f"cairn-compliance-{slug or 'scope'}-{start.isoformat()}-{end.isoformat()}.pdf"


def generate_for_schedule(
    schedule: ReportSchedule, start: date, end: date, actor: Actor = SYSTEM
) -> ReportFile:
    """Build, render and store one report of a schedule (no e-mail). The file's
    digest is recorded and the export audited by exports.export."""
    scope = scope_of(schedule)
    report = compliance.build_compliance_report(start, end, scope)
    content, kept = exports.export(actor, report, scope, "pdf")
    return ReportFile.objects.create(
        record=kept, schedule=schedule, filename=_filename(schedule, start, end), content=content
    )


def email_report(stored: ReportFile, recipients: list[str]) -> ReportFile:
    """Send the stored PDF; the outcome (or error) is kept on the file."""
    generated = stored.record
    subject = f"Cairn compliance report: {generated.scope} {generated.start} to {generated.end}"
    body = (
        f"The backup compliance report for {generated.scope}, {generated.start} to {generated.end} "
        f"(UTC days), is attached.\n\n"
        f"SHA-256 of the attached file: {generated.sha256}\n"
        f"Digest of the report's data:  {generated.report_digest}\n\n"
        f"Check a copy against the console's record on its Reports page.\n"
    )
    message = EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    message.attach(stored.filename, bytes(stored.content), "application/pdf")
    try:
        message.send(fail_silently=False)
    except Exception as exc:  # any transport error: kept, shown, retried by nobody
        log.warning("report %s: e-mail failed: %s", generated.pk, exc)
        stored.email_error = f"{type(exc).__name__}: {exc}"[:500]
    else:
        stored.emailed_to = list(recipients)
        stored.email_error = ""
    stored.save(update_fields=["emailed_to", "email_error"])
    record(
        SYSTEM,
        "report.email",
        generated,
        after={
            "schedule": stored.schedule.name if stored.schedule else None,
            "recipients": list(recipients),
            "sha256": generated.sha256,
            "error": stored.email_error or None,
        },
    )
    return stored


def run_due_schedules(today: date | None = None) -> list[ReportFile]:
    """Beat: every enabled schedule due for its last closed period, once."""
    today = today or timezone.now().date()
    # The periods end yesterday at the latest: their days are filled first
    # (a no-op when the history beat already did).
    history.fill_missing()
    sent = []
    for pk in ReportSchedule.objects.filter(enabled=True).values_list("pk", flat=True):
        try:
            stored = _run_one(pk, today)
        except Exception as exc:  # one broken schedule must not stop the others
            log.exception("report schedule %s failed", pk)
            ReportSchedule.objects.filter(pk=pk).update(
                last_error=f"{type(exc).__name__}: {exc}"[:500]
            )
            continue
        if stored is not None:
            sent.append(email_report(stored, list(stored.schedule.recipients)))
    return sent


def _run_one(pk: int, today: date) -> ReportFile | None:
    with transaction.atomic():
        schedule = (
            ReportSchedule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("group", "policy")
            .filter(pk=pk)
            .first()
        )
        if schedule is None or not is_due(schedule, today):
            return None
        start, end = last_closed_period(schedule.frequency, today)
        try:
            stored = generate_for_schedule(schedule, start, end)
        except (ScopeGone, compliance.ScopeError) as exc:
            schedule.last_error = f"Not generated for {start} to {end}: {exc}."
            schedule.save(update_fields=["last_error"])
            return None
        schedule.last_period_end = end
        schedule.last_error = ""
        schedule.save(update_fields=["last_period_end", "last_error"])
        return stored


def open_stored(actor: Actor, pk: int) -> ReportFile:
    """A stored report for download (with its bytes); each copy handed out is
    audited with the digest of what was handed out."""
    stored = ReportFile.objects.select_related("record").get(pk=pk)
    record(
        actor,
        "report.download",
        stored.record,
        after={"filename": stored.filename, "sha256": stored.record.sha256},
    )
    return stored
