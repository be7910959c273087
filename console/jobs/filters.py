"""Filters of the job-run, command and snapshot lists: the dashboard pages,
the API's /jobs/, /commands/ and /snapshots/ and the OpenAPI schema read
them from here."""

from __future__ import annotations

import django_filters

from console.core.filters import DateOrDateTimeFilter, ListFilterSet
from console.jobs.models import (
    Command,
    CommandKind,
    CommandState,
    JobKind,
    JobRun,
    JobState,
    Snapshot,
)


class JobRunFilterSet(ListFilterSet):
    device = django_filters.UUIDFilter(field_name="device_id", label="Device id")
    hostname = django_filters.CharFilter(
        field_name="device__hostname", lookup_expr="icontains", max_length=255,
        label="Device hostname contains",
    )  # fmt: skip
    state = django_filters.ChoiceFilter(choices=JobState.choices, label="State")
    kind = django_filters.ChoiceFilter(choices=JobKind.choices, label="Kind")
    since = DateOrDateTimeFilter(
        field_name="started_at", lookup_expr="gte", label="Started at or after (ISO 8601)"
    )

    class Meta:
        model = JobRun
        fields = ["device", "hostname", "state", "kind", "since"]


class CommandFilterSet(ListFilterSet):
    device = django_filters.UUIDFilter(field_name="device_id", label="Device id")
    state = django_filters.ChoiceFilter(choices=CommandState.choices, label="State")
    kind = django_filters.ChoiceFilter(choices=CommandKind.choices, label="Kind")

    class Meta:
        model = Command
        fields = ["device", "state", "kind"]


class SnapshotFilterSet(ListFilterSet):
    device = django_filters.UUIDFilter(field_name="device_id", label="Device id")

    class Meta:
        model = Snapshot
        fields = ["device"]


def job_runs(params) -> JobRunFilterSet:
    """Job runs (with their device) filtered by ``params``."""
    return JobRunFilterSet(params, queryset=JobRun.objects.select_related("device"))


def commands(params) -> CommandFilterSet:
    """Commands (with their device and creator) filtered by ``params``."""
    return CommandFilterSet(params, queryset=Command.objects.select_related("device", "created_by"))
