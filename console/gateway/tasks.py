"""Celery tasks of the control plane: thin wrappers over service functions.
Command delivery itself is ``jobs.deliver_command`` (console/jobs/dispatch.py),
which calls console.gateway.services.delivery.deliver."""

from __future__ import annotations

from celery import shared_task

from console.gateway.services import connections


@shared_task(name="gateway.mark_offline")
def mark_offline() -> int:
    """Beat: connections with no heartbeat for a few intervals are offline
    (a gateway that died cannot say goodbye for its devices)."""
    return connections.mark_offline()
