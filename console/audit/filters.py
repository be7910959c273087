"""Filters of the audit log: the dashboard page, its CSV export, the API's
/audit-events/ and the OpenAPI schema read them from here."""

from __future__ import annotations

import django_filters

from console.audit.models import AuditEvent
from console.core.filters import DateOrDateTimeFilter, ListFilterSet


class UntilFilter(DateOrDateTimeFilter):
    """An exclusive upper bound; a plain date includes that whole day."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, end_of_day=True, **kwargs)


class AuditEventFilterSet(ListFilterSet):
    actor = django_filters.CharFilter(
        field_name="actor_name", lookup_expr="iexact", max_length=150, label="Username"
    )
    action = django_filters.CharFilter(
        lookup_expr="startswith", max_length=64, label="Action prefix, e.g. 'policy.'"
    )
    target = django_filters.CharFilter(
        field_name="target_repr", lookup_expr="icontains", max_length=200,
        label="Target description contains",
    )  # fmt: skip
    target_type = django_filters.CharFilter(
        max_length=64, label="Target type, e.g. 'policy', 'device'"
    )
    target_id = django_filters.CharFilter(max_length=64, label="Target id")
    via = django_filters.ChoiceFilter(choices=AuditEvent.Via.choices, label="Through")
    since = DateOrDateTimeFilter(
        field_name="at", lookup_expr="gte", label="At or after (ISO 8601 date or date-time)"
    )
    until = UntilFilter(
        field_name="at", lookup_expr="lt",
        label="Before (ISO 8601 date-time; a date includes that day)",
    )  # fmt: skip

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "target", "target_type", "target_id", "via", "since", "until"]


def audit_events(params) -> AuditEventFilterSet:
    return AuditEventFilterSet(params, queryset=AuditEvent.objects.all())
