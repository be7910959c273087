"""Command delivery, over the console's command service functions
(console/jobs/services.py owns the state machine: pending → sent →
acknowledged → done | failed | expired, never backwards)."""

from __future__ import annotations

import logging

from django.utils import timezone

from console.gateway.registry import Registry
from console.jobs import services as jobs
from console.jobs.models import Command, CommandKind, CommandState

log = logging.getLogger(__name__)


def deliverable_for(device_id: str) -> list[Command]:
    """Commands to (re)send when the device's stream opens, oldest first."""
    return jobs.pending_commands_for(device_id)


def pending_for_devices(device_ids) -> list[Command]:
    """Pending (never sent) unexpired commands of the devices this gateway holds."""
    ids = [str(d) for d in device_ids]
    now = timezone.now()
    out: list[Command] = []
    for i in range(0, len(ids), 500):
        out += list(
            Command.objects.filter(
                device_id__in=ids[i : i + 500], state=CommandState.PENDING, expires_at__gt=now
            ).order_by("created_at")
        )
    return out


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
