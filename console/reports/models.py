"""The daily device history and the record of generated reports.

DeviceDay snapshots, per device and closed UTC day, the facts a report needs,
so that a past period is reproducible after devices, groups and policies
change: the device is referred to by id *and* name (no foreign key: a device
deleted later keeps its rows), its groups and policies that day by id and
name. Rows are written only by console/reports/history.py.

GeneratedReport keeps the SHA-256 of every report file handed out, so a copy
given to an auditor can be checked later (console/reports/exports.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class DeviceDay(models.Model):
    day = models.DateField()
    device_id = models.UUIDField(help_text="Device id (no foreign key: rows outlive devices)")
    hostname = models.CharField(max_length=255)
    group_ids = models.JSONField(default=list, blank=True)
    group_names = models.JSONField(default=list, blank=True)
    # ",3,7," — the group ids as text, so scope filters are one LIKE on any database
    group_key = models.TextField(blank=True, default=",")
    policy_ids = models.JSONField(default=list, blank=True, help_text="Policies in force")
    policy_key = models.TextField(blank=True, default=",")
    policy_revision_id = models.BigIntegerField(null=True, blank=True, help_text="Winning revision")
    policy_hash = models.CharField(max_length=64, blank=True, help_text="Effective policy hash")
    rpo_seconds = models.PositiveIntegerField(help_text="RPO target in force")
    retention = models.CharField(max_length=255, blank=True)
    seconds = models.PositiveIntegerField(help_text="Seconds of the day the device was enrolled")
    within_seconds = models.PositiveIntegerField(help_text="Of which within RPO")
    last_good_backup = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    successes = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    bytes_added = models.BigIntegerField(default=0)
    repository_bytes = models.BigIntegerField(default=0)
    open_warnings = models.PositiveIntegerField(default=0)
    last_verification = models.DateTimeField(null=True, blank=True)
    verification_result = models.CharField(max_length=255, blank=True)
    last_test_restore = models.DateTimeField(null=True, blank=True)
    test_restore_result = models.CharField(max_length=255, blank=True)
    rto_seconds = models.FloatField(null=True, blank=True)
    restore_throughput_bps = models.FloatField(null=True, blank=True)
    filled_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["day", "hostname"]
        constraints = [
            models.UniqueConstraint(fields=["device_id", "day"], name="deviceday_device_day_uniq")
        ]
        indexes = [models.Index(fields=["day", "device_id"], name="deviceday_day_idx")]

    def __str__(self) -> str:
        return f"{self.hostname} {self.day}"


class ReportFormat(models.TextChoices):
    JSON = "json", "JSON"
    CSV = "csv", "CSV"
    PDF = "pdf", "PDF"


class GeneratedReport(models.Model):
    kind = models.CharField(max_length=32, default="compliance")
    generated_at = models.DateTimeField(default=timezone.now, db_index=True)
    generated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    generated_by_name = models.CharField(max_length=150, help_text="User name, or 'system'")
    via = models.CharField(max_length=16, blank=True)
    scope = models.CharField(max_length=255, help_text="Scope label")
    scope_kind = models.CharField(max_length=16, default="all")
    scope_id = models.BigIntegerField(null=True, blank=True)
    start = models.DateField()
    end = models.DateField()
    format = models.CharField(max_length=8, choices=ReportFormat.choices)
    sha256 = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the file")
    report_digest = models.CharField(max_length=64, help_text="Digest of the report's content")
    size = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-generated_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.scope} {self.start}..{self.end} ({self.format})"


# Scheduled reports and the bytes of the reports they generated (their own module).
from console.reports.schedules import ReportFile, ReportSchedule  # noqa: E402, F401
