"""API v1 serializers: Device groups."""

from __future__ import annotations

from rest_framework import serializers

from console.api import fields as f
from console.fleet.models import Device, DeviceGroup


class GroupSerializer(f.ModelSerializer):
    device_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = DeviceGroup
        fields = ["id", "name", "description", "created_at", "device_count", "is_demo"]
        read_only_fields = ["id", "created_at", "device_count", "is_demo"]


class AddDevicesInput(serializers.Serializer):
    devices = f.List(child=f.PrimaryKey(queryset=Device.objects.all()))
