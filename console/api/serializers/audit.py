"""API v1 serializers: The audit log."""

from __future__ import annotations

from rest_framework import serializers

from console.audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor",
            "actor_name",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "before",
            "after",
            "source_address",
            "via",
        ]
        read_only_fields = fields
