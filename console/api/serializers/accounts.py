"""API v1 serializers: Users and the account's address input."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.accounts.roles import ROLES, role_of
from console.api import fields as f


class UserSerializer(f.ModelSerializer):
    role = serializers.ChoiceField(choices=[*ROLES, ""], required=False, allow_blank=True)
    password = f.Text(write_only=True, required=False, allow_blank=True, default="")

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "role", "password", "is_active", "last_login"]
        read_only_fields = ["id", "is_active", "last_login"]
        extra_kwargs = {"username": {"validators": []}}

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["role"] = role_of(instance) or ""
        return data


@extend_schema_field(
    {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]}
)
class IPAddress(serializers.IPAddressField):
    pass


class AddressInput(serializers.Serializer):
    address = IPAddress()
