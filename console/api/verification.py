"""Serializers of verification and test-restore results (issue 17): what a
run read, how much, what was damaged and which files, typed for the OpenAPI
schema. The values come from console/storage/verification.py ``summary``,
which checks and bounds them."""

from __future__ import annotations

from rest_framework import serializers


class DamagedFileSerializer(serializers.Serializer):
    snapshot = serializers.CharField(help_text="Snapshot id that references the damaged data")
    path = serializers.CharField(help_text="The file's path in that snapshot")


class VerificationResultSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["verify", "test_restore"])
    ok = serializers.BooleanField(help_text="Finished and found no damage")
    bytes_read = serializers.IntegerField(help_text="Bytes read from storage (and checked)")
    objects_checked = serializers.IntegerField(
        help_text="verify: packs read whole + snapshots + trees; test restore: chunks compared"
    )
    files_compared = serializers.IntegerField(help_text="test restore: files restored in memory")
    duration_s = serializers.FloatField()
    throughput_bps = serializers.IntegerField(help_text="bytes_read / duration_s")
    damaged = serializers.ListField(child=serializers.CharField(), help_text="Damaged pack ids")
    damaged_files = DamagedFileSerializer(many=True)
    damaged_files_total = serializers.IntegerField()
    packs_read = serializers.IntegerField(help_text="verify: packs read whole this run")
    packs_total = serializers.IntegerField(help_text="verify: packs in the repository")
    cycle_complete = serializers.BooleanField(
        help_text="verify: this run ended a cycle through all packs"
    )
    repository_bytes = serializers.IntegerField(help_text="verify: repository size measured")
    snapshot = serializers.CharField(help_text="test restore: the snapshot restored from")


class VerificationRunSerializer(serializers.Serializer):
    job = serializers.IntegerField(source="run.pk")
    state = serializers.CharField(source="run.state")
    finished_at = serializers.DateTimeField(source="run.finished_at")
    result = VerificationResultSerializer()


class DeviceVerificationSerializer(serializers.Serializer):
    verify = VerificationRunSerializer(allow_null=True, required=False)
    test_restore = VerificationRunSerializer(allow_null=True, required=False)
