"""Celery tasks of the fleet app: thin wrappers around service functions."""

from __future__ import annotations

from celery import shared_task

from console.fleet import protection


@shared_task(name="fleet.recompute_protection")
def recompute_protection() -> int:
    """Beat: keep every device's protection deadlines consistent with its
    last success and current RPO (status itself is computed against now)."""
    return protection.recompute_protection()
