"""Command delivery, over the console's command service functions
(console/jobs/services.py owns the state machine: pending → sent →
acknowledged → done | failed | expired, never backwards)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from console.fleet.models import Device
from console.gateway.registry import Registry
from console.jobs import services as jobs
from console.jobs.models import Command, CommandKind, CommandState

DELIVERABLE = (CommandState.PENDING, CommandState.SENT)

log = logging.getLogger(__name__)


def deliverable_for(device_id: str) -> list[Command]:
    """Commands to (re)send when the device's stream opens, oldest first."""
    return jobs.pending_commands_for(device_id)


def pending_for_devices(device_ids, min_age: float = 0.0) -> list[Command]:
    """Pending (never sent) unexpired commands of the devices this gateway
    holds, at least ``min_age`` seconds old (fresh ones arrive by pub/sub)."""
    ids = [str(d) for d in device_ids]
    now = timezone.now()
    cutoff = now - timedelta(seconds=min_age)
    out: list[Command] = []
    for i in range(0, len(ids), 500):
        out += list(
            Command.objects.filter(
                device_id__in=ids[i : i + 500],
                state=CommandState.PENDING,
                expires_at__gt=now,
                created_at__lte=cutoff,
            ).order_by("created_at")
        )
    return out


def get_many(command_ids) -> list[Command]:
    ids = []
    for c in command_ids:
        try:
            ids.append(uuid.UUID(str(c)))
        except ValueError:
            continue
    return list(Command.objects.filter(pk__in=ids)) if ids else []


def mark_sent_many(command_ids) -> int:
    """pending → sent for many commands in one statement (never backwards)."""
    return Command.objects.filter(pk__in=list(command_ids), state=CommandState.PENDING).update(
        state=CommandState.SENT, sent_at=timezone.now(), attempts=F("attempts") + 1
    )


def acknowledge_many(acks, policy_acks: dict[str, set[str]]) -> None:
    """Batched acknowledgements from the streams.

    ``acks``: (device id, command id, accepted, reason); a command is only
    moved when it belongs to the acknowledging device. ``policy_acks``:
    revision hash → devices now running it; the same effect as
    ``record_policy_applied`` for each (applied hash and time, their
    apply-policy commands for that hash done), in a few statements."""
    now = timezone.now()
    by_id = {}
    for device_id, command_id, ok, reason in acks:
        try:
            by_id[uuid.UUID(command_id)] = (str(device_id), ok, reason)
        except ValueError:
            continue
    if by_id:
        owners = dict(Command.objects.filter(pk__in=list(by_id)).values_list("pk", "device_id"))
        accepted = [c for c, (d, ok, _) in by_id.items() if ok and str(owners.get(c)) == d]
        if accepted:
            Command.objects.filter(pk__in=accepted, state__in=DELIVERABLE).update(
                state=CommandState.ACKNOWLEDGED, acknowledged_at=now
            )
            Command.objects.filter(
                pk__in=accepted, kind=CommandKind.CANCEL, state=CommandState.ACKNOWLEDGED
            ).update(state=CommandState.DONE, finished_at=now)
        for c, (d, ok, reason) in by_id.items():
            if not ok and str(owners.get(c)) == d:
                acknowledge(d, str(c), False, reason)
    for revision, devices in policy_acks.items():
        devices = list(devices)
        for i in range(0, len(devices), 500):
            chunk = devices[i : i + 500]
            Device.objects.filter(pk__in=chunk).exclude(applied_hash=revision).update(
                applied_hash=revision, applied_at=now
            )
            Command.objects.filter(
                device_id__in=chunk,
                kind=CommandKind.APPLY_POLICY,
                state__in=jobs.OPEN_COMMAND_STATES,
                payload__hash=revision,
            ).update(state=CommandState.DONE, finished_at=now)


def get(command_id: str) -> Command | None:
    try:
        return Command.objects.filter(pk=command_id).first()
    except (ValueError, Exception):
        return None


def mark_sent(command_ids) -> None:
    for c in command_ids:
        jobs.mark_command_sent(c)


def acknowledge(device_id: str, command_id: str, accepted: bool, reason: str = "") -> None:
    cmd = get(command_id)
    if cmd is None or str(cmd.device_id) != str(device_id):
        return
    if accepted:
        jobs.mark_command_acknowledged(cmd.pk)
        if cmd.kind == CommandKind.CANCEL:
            jobs.mark_command_finished(cmd.pk, ok=True)
    elif reason == "expired":
        Command.objects.filter(pk=cmd.pk, state__in=jobs.OPEN_COMMAND_STATES).update(
            state=CommandState.EXPIRED, finished_at=timezone.now(), error="expired before it ran"
        )
    else:
        jobs.mark_command_finished(cmd.pk, ok=False, error=reason or "refused by the agent")


def deliver(command_id: str, registry: Registry | None = None) -> str:
    """The real delivery behind console.jobs.services.deliver_command: find
    the gateway holding the device's stream in Redis and publish the command
    to it. The gateway writes it to the stream and marks it sent. Outcomes:
    "missing", "skipped" (not pending), "expired", "offline" (stays pending,
    sent on reconnect), "published". Raises jobs.DeliveryRetry when Redis
    fails (the Celery task retries with backoff)."""
    command = Command.objects.filter(pk=command_id).first()
    if command is None:
        return "missing"
    if command.state != CommandState.PENDING:
        return "skipped"  # already on its way; reconnects resend sent ones
    if command.expires_at and command.expires_at < timezone.now():
        jobs.expire_commands()
        return "expired"
    registry = registry or Registry()
    if not registry.enabled:
        return "offline"  # embedded setup: the gateway's sweep delivers it
    try:
        instance = registry.locate(str(command.device_id))
        if instance is None:
            return "offline"
        receivers = registry.publish(
            instance,
            {"type": "command", "device": str(command.device_id), "command": str(command.pk)},
        )
    except Exception as exc:
        raise jobs.DeliveryRetry(f"registry unavailable: {exc}") from exc
    if receivers == 0:
        # The instance's key is alive but nobody listens (restarting?): retry.
        raise jobs.DeliveryRetry(f"gateway {instance} is not listening")
    return "published"
