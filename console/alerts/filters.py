"""Filters of the alert history: the dashboard page, the API's /alerts/ and
the OpenAPI schema read them from here."""

from __future__ import annotations

import django_filters

from console.alerts.models import Alert, AlertState, Rule, Severity
from console.core.filters import ListFilterSet


class AlertFilterSet(ListFilterSet):
    device = django_filters.UUIDFilter(field_name="device_id", label="Device id")
    state = django_filters.ChoiceFilter(choices=AlertState.choices, label="State")
    rule = django_filters.ChoiceFilter(choices=Rule.choices, label="Rule")
    severity = django_filters.ChoiceFilter(choices=Severity.choices, label="Severity")

    class Meta:
        model = Alert
        fields = ["device", "state", "rule", "severity"]


def alerts(params) -> AlertFilterSet:
    return AlertFilterSet(
        params, queryset=Alert.objects.select_related("device", "acknowledged_by")
    )
