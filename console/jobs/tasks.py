"""Celery tasks of the jobs app: thin wrappers around service functions.
Command delivery (``jobs.deliver_command``, ``jobs.deliver_commands``) is
defined in console/jobs/dispatch.py, which queues it; it is imported here so
that the worker's discovery of this module registers it too."""

from __future__ import annotations

from celery import shared_task

from console.jobs import services
from console.jobs.dispatch import deliver_command, deliver_commands

__all__ = ["deliver_command", "deliver_commands", "expire_commands", "redeliver_pending"]


@shared_task(name="jobs.expire_commands")
def expire_commands() -> int:
    return services.expire_commands()


@shared_task(name="jobs.redeliver_pending")
def redeliver_pending() -> int:
    """Beat sweep: queue delivery of commands still pending."""
    return services.redeliver_pending()
