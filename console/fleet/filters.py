"""The device list's filters: the dashboard page, its CSV export, the API's
/devices/ and the OpenAPI schema all read them from here."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from console.core.filters import IdFilter, ListFilterSet
from console.fleet.models import OS, Device
from console.fleet.queries import SORTS, STATUS_CHOICES, status_q

DEFAULT_SORT = "hostname"


class DeviceFilterSet(ListFilterSet):
    q = django_filters.CharFilter(
        method="filter_q", max_length=100, label="Hostname or user contains"
    )
    # Blank: every active device; "all" includes the revoked ones.
    status = django_filters.ChoiceFilter(
        choices=[(v, label) for v, label in STATUS_CHOICES if v] + [("all", "All")],
        method="filter_nothing",
        label="Protection or condition (default: every active device; 'all' includes revoked)",
    )
    group = IdFilter(field_name="groups__id", label="Device group id")
    os = django_filters.ChoiceFilter(choices=OS.choices, label="Operating system")
    policy = IdFilter(field_name="effective_policy_id", label="Effective policy id")
    sort = django_filters.ChoiceFilter(
        choices=[(key, key) for key in SORTS], method="filter_nothing", label="Sort key"
    )

    defaults = {"sort": DEFAULT_SORT}

    class Meta:
        model = Device
        fields = ["q", "status", "group", "os", "policy", "sort"]

    def filter_q(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        return qs.filter(Q(hostname__icontains=value) | Q(owner__icontains=value)) if value else qs

    def filter_nothing(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return qs  # status and sort apply to every query, blank or not: filter_queryset

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        qs = super().filter_queryset(queryset)
        data = getattr(self.form, "cleaned_data", {})
        qs = qs.filter(status_q(data.get("status") or ""))
        return qs.order_by(*SORTS[data.get("sort") or DEFAULT_SORT])


def devices(params, queryset: QuerySet | None = None) -> DeviceFilterSet:
    """The device list filtered by ``params`` (a QueryDict): ``.qs`` the devices,
    ``.errors`` the values refused."""
    return DeviceFilterSet(params, queryset=Device.objects.all() if queryset is None else queryset)
