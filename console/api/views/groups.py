"""Device groups."""

from __future__ import annotations

from django.db.models import Count
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from console.api import serializers as s
from console.api.views.base import Base, actor, validated
from console.fleet import services as fleet
from console.fleet.models import DeviceGroup


class GroupViewSet(Base, viewsets.ModelViewSet):
    serializer_class = s.GroupSerializer
    capabilities = {"*": "group.manage"}

    def get_queryset(self):
        return DeviceGroup.objects.annotate(device_count=Count("devices")).order_by("name")

    def _annotated(self, group: DeviceGroup) -> DeviceGroup:
        return self.get_queryset().get(pk=group.pk)

    def perform_create(self, serializer):
        d = serializer.validated_data
        group = fleet.create_group(actor(self.request), d["name"], d.get("description", ""))
        serializer.instance = self._annotated(group)

    def perform_update(self, serializer):
        d = serializer.validated_data
        group = serializer.instance
        group = fleet.update_group(
            actor(self.request),
            group,
            d.get("name", group.name),
            d.get("description", group.description),
        )
        serializer.instance = self._annotated(group)

    def perform_destroy(self, instance):
        fleet.delete_group(actor(self.request), instance)

    @extend_schema(request=s.AddDevicesInput, responses=s.GroupSerializer, summary="Add devices")
    @action(detail=True, methods=["post"])
    def devices(self, request, pk=None):
        data = validated(s.AddDevicesInput, request)
        group = self.get_object()
        fleet.add_devices_to_group(actor(request), group, data["devices"])
        return Response(s.GroupSerializer(self._annotated(group)).data)
