"""The audit log, filtered by its FilterSet."""

from __future__ import annotations

from rest_framework import viewsets

from console.api import serializers as s
from console.api.views.base import AuditCursor, Base, ListFilters
from console.audit.filters import AuditEventFilterSet
from console.audit.models import AuditEvent


class AuditEventViewSet(Base, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.AuditEventSerializer
    pagination_class = AuditCursor
    capabilities = {"read": "audit.view"}
    filter_backends = [ListFilters]
    filterset_class = AuditEventFilterSet
    queryset = AuditEvent.objects.all()
