"""API v1 serializers: Devices: list, detail (with the connection and where each setting is defined) and the inputs of device actions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.api import fields as f
from console.api.verification import DeviceVerificationSerializer
from console.fleet.models import Device, DeviceGroup
from console.gateway.models import DeviceConnection
from console.jobs import openfiles
from console.policies import origin
from console.policies import services as policies
from console.storage import verification


class GroupRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeviceGroup
        fields = ["id", "name"]


class DeviceSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True)
    policy_in_sync = serializers.BooleanField(read_only=True)
    effective_policy_name = serializers.CharField(
        source="effective_policy.name", read_only=True, default=None, allow_null=True
    )
    effective_revision_number = serializers.IntegerField(
        source="effective_revision.number", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = Device
        fields = [
            "id",
            "hostname",
            "os",
            "os_version",
            "agent_version",
            "owner",
            "status",
            "failing",
            "consecutive_failures",
            "last_error",
            "last_seen_at",
            "last_backup_at",
            "last_success_at",
            "last_job_state",
            "protected_until",
            "at_risk_until",
            "rpo",
            "storage_bytes",
            "effective_policy",
            "effective_policy_name",
            "effective_revision",
            "effective_revision_number",
            "effective_hash",
            "applied_hash",
            "applied_at",
            "policy_in_sync",
            "enrolled_at",
            "cert_fingerprint",
            "revoked",
            "revoked_at",
            "is_demo",
            "spool_lease_expires_at",
        ]
        read_only_fields = fields


class DeviceConnectionSerializer(serializers.ModelSerializer):
    """What the agent last said about itself through the gateway."""

    class Meta:
        model = DeviceConnection
        fields = [
            "online",
            "agent_state",
            "pause_reason",
            "next_backup_at",
            "outbox_size",
            "last_heartbeat_at",
            "connected_at",
            "disconnected_at",
        ]
        read_only_fields = fields


class DefinedInSerializer(serializers.Serializer):
    """One value of the device's effective policy and the policy assignment it
    comes from: the highest-precedence policy decides every setting; excludes
    add up from all of the device's policies."""

    setting = serializers.CharField(
        help_text='Field path in the policy spec: "schedule.every_hours"; an exclude is '
        '"excludes[<pattern>]".'
    )
    value = serializers.JSONField(help_text="The effective value, as in the policy spec.")
    policy = serializers.IntegerField(help_text="Id of the policy the value is taken from.")
    policy_name = serializers.CharField()
    group = serializers.IntegerField(help_text="Id of the group that assigns that policy.")
    group_name = serializers.CharField()
    precedence = serializers.IntegerField(help_text="Of that assignment; lower wins.")


class DeviceDetailSerializer(DeviceSerializer):
    groups = GroupRefSerializer(many=True, read_only=True)
    # null until the agent first connects
    connection = DeviceConnectionSerializer(read_only=True, allow_null=True)
    # snapshots kept but flagged: agent time implausible (docs/security.md)
    suspicious_snapshots = serializers.SerializerMethodField()
    # files of the last backup stored torn with no consistent copy within the RPO (issue 15)
    unprotected_files = serializers.SerializerMethodField()
    # where each value of the effective policy comes from: the highest-precedence
    # policy decides every setting, excludes add up (agent/policy/merge.py)
    defined_in = serializers.SerializerMethodField()
    # issue 17: the console's last verification and test restore of the device
    verification = serializers.SerializerMethodField()

    class Meta(DeviceSerializer.Meta):
        fields = [
            *DeviceSerializer.Meta.fields,
            "groups",
            "connection",
            "suspicious_snapshots",
            "unprotected_files",
            "defined_in",
            "verification",
        ]
        read_only_fields = fields

    def get_suspicious_snapshots(self, obj) -> int:
        return obj.observed_snapshots.filter(suspicious=True).count()

    def get_unprotected_files(self, obj) -> list[dict]:
        return [f.to_dict() for f in openfiles.unprotected_files(obj)]

    @extend_schema_field(DeviceVerificationSerializer)
    def get_verification(self, obj) -> dict:
        return DeviceVerificationSerializer(verification.latest(obj)).data

    @extend_schema_field(DefinedInSerializer(many=True))
    def get_defined_in(self, obj) -> list[dict]:
        effective = policies.effective_policy_for_device(obj)
        return [
            {
                "setting": item.setting,
                "value": item.value,
                "policy": item.origin.policy_id,
                "policy_name": item.origin.policy_name,
                "group": item.origin.group_id,
                "group_name": item.origin.group_name,
                "precedence": item.origin.precedence,
            }
            for item in origin.effective_settings(effective)
        ]


class DeviceGroupsInput(serializers.Serializer):
    groups = f.List(child=f.PrimaryKey(queryset=DeviceGroup.objects.all()))


class RestoreInput(serializers.Serializer):
    snapshot_id = f.Text()
    # blank entries are dropped by the service
    paths = serializers.ListField(child=f.Text(allow_blank=True), required=False, default=list)
    target = f.Text(required=False, allow_blank=True, default="")
    overwrite = f.Boolean(required=False, default=False)
    # restore onto another device (issue 11): the target receives the command
    target_device = f.PrimaryKey(
        queryset=Device.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Another enrolled device to restore onto (paths mapped onto its profile)",
    )
    source_home = f.Text(
        required=False,
        allow_blank=True,
        default="",
        max_length=1024,
        help_text="The source user's profile folder (e.g. /C/Users/ana); "
        "by default the one the paths lie under",
    )


class BulkInput(serializers.Serializer):
    action = serializers.ChoiceField(choices=["backup", "verify", "add_to_group"])
    devices = serializers.ListField(child=f.StrictUUID(), max_length=500)
    group = f.PrimaryKey(
        queryset=DeviceGroup.objects.all(), required=False, allow_null=True, default=None
    )


class ReplaceInput(serializers.Serializer):
    # the device that takes over this one's history, policy and groups (issue 11)
    replacement = f.PrimaryKey(queryset=Device.objects.all())


class RevokeInput(serializers.Serializer):
    reason = f.Text(required=False, allow_blank=True, default="")
