"""Business rules of commands and job runs.

Two halves:

* **Requests** from admins (UI and API call the same functions): back up
  now, restore, verify, cancel, and the apply-policy commands a rollout
  queues. Each creates a durable Command row, audits it, and hands it to
  console/jobs/dispatch.py.
* **Reports** from agents, called by the gateway (control plane):
  ``record_heartbeat``, ``record_policy_applied``, ``record_job_started``,
  ``record_job_progress``, ``record_job_result``, ``record_snapshot``, and the
  command transitions ``mark_command_sent`` / ``mark_command_acknowledged`` /
  ``mark_command_finished`` (the Command model's, by id; the gateway's batched
  ones are console/jobs/commands.py). They are idempotent: a replayed report (same
  idempotency key, same command id) changes nothing the second time. They
  keep Device's denormalised columns and DailyJobStats in step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from console.audit.services import SYSTEM, Actor, record
from console.core.queries import chunks
from console.fleet.models import AT_RISK_FACTOR, Device
from console.jobs import dispatch, openfiles
from console.jobs.models import (
    FINAL_COMMAND_STATES,
    Command,
    CommandKind,
    CommandState,
    DailyJobStats,
    JobKind,
    JobRun,
    JobState,
    JobTrigger,
    ReportReceipt,
    Snapshot,
)

MAX_WARNINGS_KEPT = 200


def _ttl() -> timedelta:
    return timedelta(hours=getattr(settings, "CAIRN_COMMAND_TTL_HOURS", 72))


def _create_command(actor: Actor, device: Device, kind: str, payload: dict) -> Command:
    if device.revoked:
        raise PermissionDenied(f"{device.hostname} is revoked.")
    now = timezone.now()
    command = Command.objects.create(
        device=device,
        kind=kind,
        payload=payload,
        created_by=actor.user,
        created_at=now,
        expires_at=now + _ttl(),
    )
    record(
        actor,
        f"device.{kind}",
        device,
        after={"command": str(command.pk), "kind": kind, **payload},
    )
    dispatch.enqueue_delivery(command)
    return command


# --- requests -------------------------------------------------------------------


@transaction.atomic
def request_backup(actor: Actor, device: Device) -> Command:
    return _create_command(actor, device, CommandKind.BACKUP, {})


@transaction.atomic
def request_verify(actor: Actor, device: Device) -> Command:
    return _create_command(actor, device, CommandKind.VERIFY, {})


@transaction.atomic
def request_for_devices(actor: Actor, kind: str, devices) -> list[Command]:
    """A backup (``kind`` "backup") or else a verify command to each device: all or none."""
    request_fn = request_backup if kind == CommandKind.BACKUP else request_verify
    return [request_fn(actor, device) for device in devices]


@transaction.atomic
def request_restore(
    actor: Actor,
    device: Device,
    snapshot_id: str,
    paths: list[str] | None = None,
    target: str = "",
    overwrite: bool = False,
) -> Command:
    """Restore files of one of the device's snapshots, to their original
    paths (target empty) or under a target folder. Newer local files are kept
    unless overwrite is set."""
    snapshot_id = (snapshot_id or "").strip()
    if not snapshot_id:
        raise ValidationError({"snapshot_id": ["Choose a snapshot."]})
    if not Snapshot.objects.filter(device=device, snapshot_id=snapshot_id).exists():
        raise ValidationError({"snapshot_id": ["This device has no such snapshot."]})
    paths = [p.strip() for p in (paths or []) if p and p.strip()]
    payload = {
        "snapshot_id": snapshot_id,
        "paths": paths,
        "target": (target or "").strip(),
        "overwrite": bool(overwrite),
    }
    return _create_command(actor, device, CommandKind.RESTORE, payload)


@transaction.atomic
def cancel_command(actor: Actor, command: Command) -> Command:
    """Cancel an open command: a pending one never leaves; one already sent
    gets a cancel command after it."""
    command = Command.objects.select_for_update().get(pk=command.pk)
    if command.state in FINAL_COMMAND_STATES:
        raise ValidationError("This command has already finished.")
    if command.state == CommandState.PENDING:
        command.state = CommandState.EXPIRED
        command.error = f"cancelled by {actor.name}"
        command.finished_at = timezone.now()
        command.save(update_fields=["state", "error", "finished_at"])
        record(
            actor,
            "command.cancel",
            command,
            before={"state": "pending"},
            after={"state": "expired"},
        )
        return command
    return _create_command(actor, command.device, CommandKind.CANCEL, {"command": str(command.pk)})


def queue_apply_policy(changed: list[tuple[Any, Any]], *, actor: Actor = SYSTEM) -> list[Command]:
    """Rollout: one apply-policy command per (device id, Effective); open
    apply-policy commands of those devices are superseded (expired)."""
    now = timezone.now()
    device_ids = [dev_id for dev_id, _ in changed]
    for chunk in chunks(device_ids):
        Command.objects.filter(device_id__in=chunk, kind=CommandKind.APPLY_POLICY).expire(
            "superseded by a newer revision", at=now
        )
    commands = [
        Command(
            device_id=dev_id,
            kind=CommandKind.APPLY_POLICY,
            payload={
                "hash": eff.hash,
                "policy": eff.policy.pk,
                "revision": eff.revision.number,
                "revision_id": eff.revision.pk,
            },
            created_by=actor.user,
            created_at=now,
            expires_at=now + _ttl(),
        )
        for dev_id, eff in changed
    ]
    Command.objects.bulk_create(commands, batch_size=1000)
    dispatch.enqueue_deliveries(commands)
    return commands


@transaction.atomic
def expire_commands(now: datetime | None = None) -> int:
    """Beat: open commands past their expiry become expired."""
    now = now or timezone.now()
    return Command.objects.filter(expires_at__lt=now).expire(
        "not delivered before it expired", at=now
    )


def redeliver_pending(limit: int = 5000) -> int:
    """Queue delivery again for pending, unexpired commands (beat sweep)."""
    commands = list(
        Command.objects.filter(state=CommandState.PENDING, expires_at__gt=timezone.now())
        .order_by("created_at")
        .only("pk")[:limit]
    )
    with transaction.atomic():
        dispatch.enqueue_deliveries(commands)
    return len(commands)


def pending_commands_for(device_id) -> list[Command]:
    """Open commands of a device, oldest first (sent on reconnect)."""
    return list(Command.objects.filter(device_id=device_id).deliverable().order_by("created_at"))


# --- command transitions by id (the Command model's, never backwards) ---------------


def mark_command_sent(command_id) -> bool:
    return bool(Command.objects.filter(pk=command_id).mark_sent())


def mark_command_acknowledged(command_id) -> bool:
    return bool(Command.objects.filter(pk=command_id).acknowledge())


def mark_command_finished(command_id, ok: bool, error: str = "") -> bool:
    return bool(Command.objects.filter(pk=command_id).finish(ok, error))


# --- reports from agents ---------------------------------------------------------------


def _first_time(key: str | None) -> bool:
    """True the first time an idempotency key is seen (then remembered)."""
    if not key:
        return True
    try:
        with transaction.atomic():
            ReportReceipt.objects.create(key=key[:160])
    except IntegrityError:
        return False
    return True


def record_heartbeat(
    device_id,
    *,
    at: datetime | None = None,
    agent_version: str | None = None,
    applied_hash: str | None = None,
    storage_bytes: int | None = None,
) -> bool:
    """An agent is alive. Idempotent by nature (last_seen only moves forward)."""
    at = at or timezone.now()
    fields: dict[str, Any] = {"last_seen_at": at}
    if agent_version:
        fields["agent_version"] = agent_version[:32]
    if storage_bytes is not None:
        fields["storage_bytes"] = storage_bytes
    updated = Device.objects.filter(pk=device_id).exclude(last_seen_at__gt=at).update(**fields)
    if applied_hash is not None:
        record_policy_applied(device_id, applied_hash, at=at)
    return bool(updated)


def record_policy_applied(device_id, applied_hash: str, *, at: datetime | None = None) -> bool:
    """The agent runs the policy with this hash (rollout acknowledgement)."""
    at = at or timezone.now()
    updated = (
        Device.objects.filter(pk=device_id)
        .exclude(applied_hash=applied_hash)
        .update(applied_hash=applied_hash, applied_at=at)
    )
    if updated:
        Command.objects.filter(
            device_id=device_id, kind=CommandKind.APPLY_POLICY, payload__hash=applied_hash
        ).finish(ok=True, at=at)
    return bool(updated)


@transaction.atomic
def record_job_started(
    device_id,
    key: str,
    *,
    kind: str = JobKind.BACKUP,
    trigger: str = JobTrigger.SCHEDULE,
    command_id=None,
    revision_hash: str = "",
    started_at: datetime | None = None,
) -> JobRun:
    """A job began on the agent. ``key`` is the agent's id for the run; a
    replay returns the existing row.

    The first progress report, the 'started' report and a fast result can
    arrive at once on different gateway threads (or gateways): the insert is
    a get_or_create on the unique key, so the loser of the race reads the
    winner's row instead of failing with a duplicate key (which dropped that
    progress report)."""
    existing = JobRun.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing
    device = Device.objects.get(pk=device_id)
    run, created = JobRun.objects.get_or_create(
        idempotency_key=key,
        defaults={
            "device": device,
            "command_id": command_id,
            "kind": kind,
            "trigger": JobTrigger.MANUAL if command_id else trigger,
            "policy_revision_id": device.effective_revision_id,
            "revision_hash": revision_hash or device.applied_hash,
            "state": JobState.RUNNING,
            "started_at": started_at or timezone.now(),
        },
    )
    if created and command_id:
        mark_command_acknowledged(command_id)
    return run


def record_job_progress(
    device_id, key: str, *, progress: float, detail: dict | None = None
) -> bool:
    """Live progress of a running job (0.0–1.0). Stale or replayed reports are ignored."""
    progress = max(0.0, min(1.0, float(progress)))
    updated = JobRun.objects.filter(
        idempotency_key=key, device_id=device_id, state=JobState.RUNNING, progress__lte=progress
    ).update(progress=progress, progress_detail=detail or {}, updated_at=timezone.now())
    return bool(updated)


@transaction.atomic
def record_job_result(
    device_id,
    key: str,
    *,
    ok: bool,
    kind: str = JobKind.BACKUP,
    trigger: str = JobTrigger.SCHEDULE,
    command_id=None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    stats: dict | None = None,
    warnings: list | None = None,
    snapshot_id: str = "",
    error: str = "",
    cancelled: bool = False,
    revision_hash: str = "",
) -> JobRun:
    """A job finished. Idempotent by ``key``: the second report of the same
    run returns it unchanged. Updates the device's protection state, the
    daily statistics, the command, and records the snapshot."""
    finished_at = finished_at or timezone.now()
    run = JobRun.objects.select_for_update().filter(idempotency_key=key).first()
    if run is not None and run.state != JobState.RUNNING:
        return run
    if run is None:
        record_job_started(
            device_id,
            key,
            kind=kind,
            trigger=trigger,
            command_id=command_id,
            revision_hash=revision_hash,
            started_at=started_at or finished_at,
        )
        # A concurrent report may have created the row (or even finished it):
        # lock it, whoever made it, and finish it only once.
        run = JobRun.objects.select_for_update().get(idempotency_key=key)
        if run.state != JobState.RUNNING:
            return run
    stats = stats or {}
    # "no snapshot provider" is a fact about the PC, not a warning of every
    # job: kept on the run, shown once on the device page
    warnings, notices = openfiles.split_environment(list(warnings or []))
    if notices:
        stats = {**stats, "environment_notices": notices}
    run.state = JobState.CANCELLED if cancelled else (JobState.SUCCEEDED if ok else JobState.FAILED)
    run.finished_at = finished_at
    run.progress = 1.0 if ok else run.progress
    run.stats = stats
    run.bytes_added = int(stats.get("bytes_added", 0) or 0)
    run.files_processed = int(stats.get("files_processed", stats.get("files", 0)) or 0)
    run.warnings = warnings[:MAX_WARNINGS_KEPT]
    run.warnings_count = len(warnings)
    run.snapshot_id = snapshot_id or ""
    run.error = error or ""
    run.updated_at = timezone.now()
    run.save()
    if run.command_id:
        mark_command_acknowledged(run.command_id)
        mark_command_finished(run.command_id, ok=ok and not cancelled, error=error)
    if run.kind == JobKind.BACKUP and not cancelled:
        _update_device_after_backup(run)
        _count_daily(run)
        if ok and snapshot_id:
            record_snapshot(
                run.device_id,
                snapshot_id,
                job_run=run,
                taken_at=finished_at,
                file_count=int(stats.get("files_total", run.files_processed) or 0),
                size_bytes=int(stats.get("size_bytes", 0) or 0),
                added_bytes=run.bytes_added,
            )
    return run


def _update_device_after_backup(run: JobRun) -> None:
    device = Device.objects.select_for_update().get(pk=run.device_id)
    at = run.finished_at
    if device.last_backup_at and device.last_backup_at > at:
        return  # an older run reported late: history only
    device.last_backup_at = at
    device.last_job_state = run.state
    fields = ["last_backup_at", "last_job_state", "failing", "consecutive_failures", "last_error"]
    if run.state == JobState.SUCCEEDED:
        device.last_success_at = at
        device.protected_until = at + device.rpo
        device.at_risk_until = at + device.rpo * AT_RISK_FACTOR
        device.failing = False
        device.consecutive_failures = 0
        device.last_error = ""
        fields += ["last_success_at", "protected_until", "at_risk_until"]
    else:
        device.failing = True
        device.consecutive_failures += 1
        device.last_error = run.error[:2000]
    if "repository_bytes" in run.stats:
        device.storage_bytes = int(run.stats["repository_bytes"] or 0)
        fields.append("storage_bytes")
    device.save(update_fields=fields)


def _count_daily(run: JobRun) -> None:
    day = run.finished_at.astimezone(UTC).date()
    stats, _ = DailyJobStats.objects.get_or_create(day=day)
    if run.state == JobState.SUCCEEDED:
        DailyJobStats.objects.filter(pk=stats.pk).update(
            succeeded=F("succeeded") + 1,
            warnings=F("warnings") + (1 if run.warnings_count else 0),
            bytes_added=F("bytes_added") + run.bytes_added,
        )
    else:
        DailyJobStats.objects.filter(pk=stats.pk).update(failed=F("failed") + 1)


def record_snapshot(
    device_id,
    snapshot_id: str,
    *,
    job_run: JobRun | None = None,
    taken_at: datetime | None = None,
    file_count: int = 0,
    size_bytes: int = 0,
    added_bytes: int = 0,
    paths: list | None = None,
    tags: list | None = None,
) -> Snapshot:
    snapshot, _ = Snapshot.objects.get_or_create(
        device_id=device_id,
        snapshot_id=snapshot_id,
        defaults={
            "job_run": job_run,
            "taken_at": taken_at or timezone.now(),
            "file_count": file_count,
            "size_bytes": size_bytes,
            "added_bytes": added_bytes,
            "paths": paths or [],
            "tags": tags or [],
        },
    )
    return snapshot


def record_report_once(key: str) -> bool:
    """For the gateway: True the first time a report key is seen."""
    return _first_time(key)
