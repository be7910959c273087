"""Celery tasks of the holds app: thin wrappers around service functions."""

from __future__ import annotations

from celery import shared_task

from console.holds import offboarding


@shared_task(name="holds.offboard_due")
def offboard_due() -> dict:
    """Beat (daily): delete revoked devices' data past the organisation's
    retention, unless held (console/holds/offboarding.py)."""
    result = offboarding.offboard_due()
    return {"offboarded": result.offboarded, "failed": result.failed}
