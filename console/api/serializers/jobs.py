"""API v1 serializers: Job runs, commands and snapshots."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.api.verification import VerificationResultSerializer
from console.jobs import openfiles
from console.jobs.models import Command, JobRun, Snapshot
from console.storage import verification


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
