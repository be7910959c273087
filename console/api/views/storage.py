"""Storage targets (credentials write-only)."""

from __future__ import annotations

from rest_framework import viewsets

from console.api import serializers as s
from console.api.views.base import Base, actor
from console.storage import services as storage
from console.storage.models import StorageTarget


class StorageTargetViewSet(Base, viewsets.ModelViewSet):
    serializer_class = s.StorageTargetSerializer
    capabilities = {"read": "storage.view", "*": "storage.manage"}
    queryset = StorageTarget.objects.all()

    def perform_create(self, serializer):
        serializer.instance = storage.save_storage_target(
            actor(self.request), dict(serializer.validated_data)
        )

    def perform_update(self, serializer):
        data = {
            **{f: getattr(serializer.instance, f) for f in storage.PUBLIC_FIELDS},
            **serializer.validated_data,
        }
        serializer.instance = storage.save_storage_target(
            actor(self.request), data, serializer.instance
        )

    def perform_destroy(self, instance):
        storage.delete_storage_target(actor(self.request), instance)
