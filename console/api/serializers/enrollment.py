"""API v1 serializers: Enrollment tokens."""

from __future__ import annotations

from rest_framework import serializers

from console.api import fields as f
from console.fleet.models import DeviceGroup, EnrollmentToken
from console.fleet.services import TOKEN_HOURS_DEFAULT, TOKEN_HOURS_MAX


class EnrollmentTokenSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()
    group_name = serializers.CharField(
        source="group.name", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = EnrollmentToken
        fields = [
            "id",
            "name",
            "prefix",
            "group",
            "group_name",
            "state",
            "expires_at",
            "max_uses",
            "uses_remaining",
            "created_at",
            "revoked_at",
            "last_used_at",
        ]
        read_only_fields = fields

    def get_state(self, obj) -> str:
        return obj.state()


class EnrollmentTokenInput(serializers.Serializer):
    name = f.Text(max_length=120)
    group = f.PrimaryKey(
        queryset=DeviceGroup.objects.all(), required=False, allow_null=True, default=None
    )
    expires_in_hours = f.Integer(
        default=TOKEN_HOURS_DEFAULT, min_value=1, max_value=TOKEN_HOURS_MAX
    )
    max_uses = f.Integer(default=1, min_value=1, max_value=100000)
