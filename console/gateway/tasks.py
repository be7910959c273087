"""Celery tasks of the control plane: thin wrappers over service functions.
Command delivery itself is ``jobs.deliver_command`` (console/jobs/tasks.py),
which calls console.gateway.services.commands.deliver."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="gateway.mark_offline")
def mark_offline() -> int:
    """Beat: connections with no heartbeat for a few intervals are offline
    (a gateway that died cannot say goodbye for its devices)."""
    from console.gateway.services import connections

    return connections.mark_offline()


@shared_task(name="gateway.recompute_protection")
def recompute_protection() -> int:
    """Beat: keep every device's protection deadlines consistent with its
    last success and current RPO (status itself is computed against now)."""
    from console.gateway.services import maintenance

    return maintenance.recompute_protection()


@shared_task(
    name="gateway.converge_policies",
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def converge_policies() -> int:
    """Beat: recompute effective policies of all devices (catches group or
    assignment changes made outside the services) and roll out changes."""
    from console.gateway.services import maintenance

    return maintenance.converge_policies()
