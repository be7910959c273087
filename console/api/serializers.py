"""Serializers of API v1. Output serializers are read-only views of the
models; input serializers only shape the request for a service function."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.accounts.roles import ROLES, role_of
from console.api import fields as f
from console.api.verification import DeviceVerificationSerializer, VerificationResultSerializer
from console.audit.models import AuditEvent
from console.fleet.models import Device, DeviceGroup, EnrollmentToken
from console.fleet.services import TOKEN_HOURS_DEFAULT, TOKEN_HOURS_MAX
from console.gateway.models import DeviceConnection
from console.jobs import openfiles
from console.jobs.models import Command, JobRun, Snapshot
from console.policies import origin
from console.policies import services as policies
from console.policies.models import Policy, PolicyAssignment, PolicyRevision
from console.policies.schema import PolicySpecField
from console.storage import verification
from console.storage.models import StorageTarget


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


class GroupSerializer(f.ModelSerializer):
    device_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = DeviceGroup
        fields = ["id", "name", "description", "created_at", "device_count", "is_demo"]
        read_only_fields = ["id", "created_at", "device_count", "is_demo"]


class AddDevicesInput(serializers.Serializer):
    devices = f.List(child=f.PrimaryKey(queryset=Device.objects.all()))


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


class JobRunSerializer(serializers.ModelSerializer):
    hostname = serializers.CharField(source="device.hostname", read_only=True)
    outcome = serializers.SerializerMethodField()
    point_in_time = serializers.SerializerMethodField()
    inconsistent_files = serializers.SerializerMethodField()
    verification = serializers.SerializerMethodField()

    class Meta:
        model = JobRun
        fields = [
            "id",
            "device",
            "hostname",
            "command",
            "kind",
            "trigger",
            "policy_revision",
            "revision_hash",
            "state",
            "started_at",
            "finished_at",
            "progress",
            "progress_detail",
            "stats",
            "bytes_added",
            "files_processed",
            "warnings_count",
            "warnings",
            "snapshot_id",
            "error",
            "outcome",
            "point_in_time",
            "inconsistent_files",
            "verification",
        ]
        read_only_fields = fields

    # issue 15: "Succeeded with inconsistent files", which snapshot each source
    # was read from, and the torn files (checked, bounded: stats are agent data)
    def get_outcome(self, obj) -> str:
        return openfiles.outcome(obj)

    def get_point_in_time(self, obj) -> dict:
        return openfiles.point_in_time(obj.stats)

    def get_inconsistent_files(self, obj) -> dict:
        files, count = openfiles.inconsistent_files(obj.stats)
        return {"count": count, "files": files}

    # issue 17: what a verification / test restore read and found (null for other kinds)
    @extend_schema_field(VerificationResultSerializer(allow_null=True))
    def get_verification(self, obj) -> dict | None:
        return verification.summary(obj)


class CommandSerializer(serializers.ModelSerializer):
    hostname = serializers.CharField(source="device.hostname", read_only=True)
    created_by = serializers.StringRelatedField(allow_null=True)  # null: made by the system

    class Meta:
        model = Command
        fields = [
            "id",
            "device",
            "hostname",
            "kind",
            "payload",
            "state",
            "created_at",
            "created_by",
            "expires_at",
            "sent_at",
            "acknowledged_at",
            "finished_at",
            "attempts",
            "error",
        ]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        payload = data.get("payload")
        if isinstance(payload, dict) and "key_sealed" in payload:
            # a device key sealed for the gateway (console/restore/onto.py): not for readers
            data["payload"] = {k: v for k, v in payload.items() if k != "key_sealed"}
        return data


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Snapshot
        fields = [
            "id",
            "device",
            "snapshot_id",
            "job_run",
            "taken_at",
            "file_count",
            "size_bytes",
            "added_bytes",
            "paths",
            "tags",
        ]
        read_only_fields = fields


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


BUCKET_PATTERN = r"^[a-z0-9.-]*[a-z0-9][a-z0-9.-]*$"
BUCKET_MESSAGE = "3–63 characters: lower-case letters, digits, dots and hyphens."


class StorageTargetSerializer(f.ModelSerializer):
    """Credentials are write-only: the API never returns them."""

    access_key = f.Text(write_only=True, required=False, allow_blank=True, default="")
    secret_key = f.Text(write_only=True, required=False, allow_blank=True, default="")
    has_credentials = serializers.BooleanField(read_only=True)

    class Meta:
        model = StorageTarget
        fields = [
            "id",
            "name",
            "endpoint",
            "bucket",
            "region",
            "prefix",
            "use_tls",
            "is_default",
            "access_key",
            "secret_key",
            "has_credentials",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at", "has_credentials"]
        extra_kwargs = {
            "name": {"validators": []},
            # The S3 rule the service enforces (console/storage/services.py), declared.
            "bucket": {
                "min_length": 3,
                "max_length": 63,
                "validators": [RegexValidator(BUCKET_PATTERN, BUCKET_MESSAGE)],
            },
        }


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
