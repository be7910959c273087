"""Shapes of API answers and inputs that are not a model: declared so the
OpenAPI schema says exactly what the server returns (and the contract test,
tests/console/test_api_contract.py, holds it to that)."""

from __future__ import annotations

from rest_framework import serializers

from console.api import serializers as s


class TokenLoginInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, style={"input_type": "password"})


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()


class ClearedOutput(serializers.Serializer):
    cleared_failures = serializers.IntegerField(min_value=0)


class BulkOutput(serializers.Serializer):
    devices = serializers.IntegerField(min_value=0, help_text="Active devices acted on")
    commands = serializers.ListField(
        child=serializers.UUIDField(), required=False, help_text="backup, verify"
    )
    group = serializers.IntegerField(required=False, help_text="add_to_group")


class EnrollmentTokenCreated(s.EnrollmentTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret, shown this once")

    class Meta(s.EnrollmentTokenSerializer.Meta):
        fields = [*s.EnrollmentTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class ContributorOutput(serializers.Serializer):
    policy = serializers.IntegerField()
    revision = serializers.IntegerField()
    group = serializers.IntegerField()
    precedence = serializers.IntegerField()


class EffectivePolicyOutput(serializers.Serializer):
    policy = serializers.IntegerField(allow_null=True)
    revision = serializers.IntegerField(allow_null=True)
    hash = serializers.CharField(allow_blank=True)
    spec = serializers.JSONField(allow_null=True)
    contributors = ContributorOutput(many=True)


class RolloutRow(serializers.Serializer):
    revision = serializers.IntegerField()
    hash = serializers.CharField()
    targeted = serializers.IntegerField(min_value=0)
    acknowledged = serializers.IntegerField(min_value=0)
    percent = serializers.IntegerField(min_value=0)


class RevisionWithDiff(s.RevisionSerializer):
    diff = serializers.JSONField(read_only=True)

    class Meta(s.RevisionSerializer.Meta):
        fields = [*s.RevisionSerializer.Meta.fields, "diff"]
        read_only_fields = fields
