"""API v1 serializers: Policies, their revisions and assignments."""

from __future__ import annotations

from rest_framework import serializers

from console.api import fields as f
from console.fleet.models import DeviceGroup
from console.policies.models import Policy, PolicyAssignment, PolicyRevision
from console.policies.schema import PolicySpecField


class RevisionSerializer(serializers.ModelSerializer):
    created_by = serializers.StringRelatedField(allow_null=True)  # null: made by the system
    spec = PolicySpecField(read_only=True)

    class Meta:
        model = PolicyRevision
        fields = ["id", "policy", "number", "hash", "spec", "comment", "created_at", "created_by"]
        read_only_fields = fields


class AssignmentSerializer(serializers.ModelSerializer):
    group_name = serializers.CharField(source="group.name", read_only=True)
    policy_name = serializers.CharField(source="policy.name", read_only=True)

    class Meta:
        model = PolicyAssignment
        fields = ["id", "policy", "policy_name", "group", "group_name", "precedence", "created_at"]
        read_only_fields = fields


class PolicySerializer(f.ModelSerializer):
    """Read: the policy with its current revision. Write: name, description,
    spec (validated by the policy contract, agent/policy; its schema is generated
    from the contract: console/policies/schema.py), comment."""

    spec = PolicySpecField(write_only=True)
    comment = f.Text(write_only=True, required=False, allow_blank=True, default="")
    current_revision = RevisionSerializer(read_only=True)
    assignments = AssignmentSerializer(many=True, read_only=True)

    class Meta:
        model = Policy
        fields = [
            "id",
            "name",
            "description",
            "spec",
            "comment",
            "current_revision",
            "assignments",
            "created_at",
            "updated_at",
            "is_demo",
        ]
        read_only_fields = ["id", "created_at", "updated_at", "is_demo"]
        # Name uniqueness is checked (case-insensitively) by the service.
        extra_kwargs = {"name": {"validators": []}}


class AssignInput(serializers.Serializer):
    group = f.PrimaryKey(queryset=DeviceGroup.objects.all())
    precedence = f.Integer(default=100, min_value=1, max_value=10000)
