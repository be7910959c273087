"""Job runs, commands and snapshots: histories filtered by their FilterSets."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from console.api import serializers as s
from console.api.views.base import Base, CommandCursor, ListFilters, NewestFirst, actor
from console.jobs import services as jobs
from console.jobs.filters import CommandFilterSet, JobRunFilterSet, SnapshotFilterSet
from console.jobs.models import Command, JobRun, Snapshot


class JobRunViewSet(Base, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.JobRunSerializer
    pagination_class = NewestFirst
    filter_backends = [ListFilters]
    filterset_class = JobRunFilterSet
    queryset = JobRun.objects.select_related("device")


class CommandViewSet(Base, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.CommandSerializer
    pagination_class = CommandCursor
    capabilities = {"cancel": "device.backup"}
    filter_backends = [ListFilters]
    filterset_class = CommandFilterSet
    queryset = Command.objects.select_related("device", "created_by")

    @extend_schema(
        request=None, responses={202: s.CommandSerializer}, summary="Cancel an open command"
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        command = jobs.cancel_command(actor(request), self.get_object())
        return Response(s.CommandSerializer(command).data, status=status.HTTP_202_ACCEPTED)


class SnapshotViewSet(Base, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.SnapshotSerializer
    filter_backends = [ListFilters]
    filterset_class = SnapshotFilterSet
    queryset = Snapshot.objects.order_by("-taken_at", "-id")
