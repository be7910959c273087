"""Celery tasks of the reports app: thin wrappers around service functions."""

from __future__ import annotations

from celery import shared_task

from console.reports import history, scheduling


@shared_task(name="reports.fill_history")
def fill_history() -> int:
    """Beat (hourly; a no-op once yesterday is filled): the daily device
    history of the closed days not yet filled."""
    return history.fill_missing()


@shared_task(name="reports.run_due_schedules")
def run_due_schedules() -> int:
    """Beat (hourly): each report schedule due for its last closed period is
    generated once, stored and e-mailed with the PDF attached."""
    return len(scheduling.run_due_schedules())
