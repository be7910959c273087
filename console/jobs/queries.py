"""Read side of the job history, shared by the dashboard and the API: the
filters of the job-run and command lists (blank: any; a state or kind that is
not one of the choices: any)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from console.core.queries import choice, given
from console.jobs.models import Command, CommandKind, CommandState, JobKind, JobRun, JobState


def job_runs(
    *,
    device: str | None = None,
    hostname: str = "",
    state: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
) -> QuerySet[JobRun]:
    """Job runs (with their device) of one device id or hostnames containing
    ``hostname``, in a state, of a kind, started at or after ``since``."""
    return JobRun.objects.select_related("device").filter(
        **given(
            device_id=device,
            device__hostname__icontains=hostname,
            state=choice(state, JobState),
            kind=choice(kind, JobKind),
            started_at__gte=since,
        )
    )


def commands(
    *, device: str | None = None, state: str | None = None, kind: str | None = None
) -> QuerySet[Command]:
    """Commands (with their device and creator) to one device, in a state, of a kind."""
    return Command.objects.select_related("device", "created_by").filter(
        **given(device_id=device, state=choice(state, CommandState), kind=choice(kind, CommandKind))
    )
