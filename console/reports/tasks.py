"""Celery tasks of the reports app: thin wrappers around service functions."""

from __future__ import annotations

from celery import shared_task

from console.reports import history


@shared_task(name="reports.fill_history")
def fill_history() -> int:
    """Beat (hourly; a no-op once yesterday is filled): the daily device
    history of the closed days not yet filled."""
    return history.fill_missing()
