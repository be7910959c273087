"""Command delivery, the transport behind console/jobs/dispatch.py: find the
gateway holding the device's stream in Redis and publish the command to it
(registered with ``dispatch.set_transport`` in console/gateway/apps.py). The
state machine is the Command model's (console/jobs/models.py)."""

from __future__ import annotations

from django.utils import timezone

from console.gateway.registry import Registry
from console.jobs import services as jobs
from console.jobs.dispatch import DeliveryRetry
from console.jobs.models import Command, CommandState


def deliver(command_id: str, registry: Registry | None = None) -> str:
    """Publish the command to the gateway holding its device's stream; that
    gateway writes it to the stream and marks it sent. Outcomes: "missing",
    "skipped" (not pending), "expired", "offline" (stays pending, sent on
    reconnect), "published". Raises DeliveryRetry when Redis fails (the
    Celery task retries with backoff)."""
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
        raise DeliveryRetry(f"registry unavailable: {exc}") from exc
    if receivers == 0:
        # The instance's key is alive but nobody listens (restarting?): retry.
        raise DeliveryRetry(f"gateway {instance} is not listening")
    return "published"
