"""Celery tasks of the policies app: thin wrappers around service functions."""

from __future__ import annotations

from celery import shared_task

from console.policies import services


@shared_task(
    name="policies.converge_policies",
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def converge_policies() -> int:
    """Beat: recompute effective policies of all devices (catches group or
    assignment changes made outside the services) and roll out changes."""
    return services.converge_policies()
