"""Commands to devices, the job runs they report, and their snapshots.

* Command: a durable request to one device (apply policy, back up now,
  restore, verify, cancel). Its state machine is here, on the model and its
  queryset: pending → sent → acknowledged → done | failed | expired, never
  backwards, never out of a final state. Created by service functions only
  (console/jobs/services.py), delivered through console/jobs/dispatch.py.
* JobRun: one backup / restore / verify / prune / test restore on a device, scheduled by the
  agent or asked for by a Command, with progress, statistics, warnings,
  snapshot id and error. Written by the report service functions the gateway
  calls (idempotent by ``idempotency_key``).
* Snapshot: a snapshot a device has in its repository.
* DailyJobStats: per-day counts of finished runs, kept in step by the report
  services so the 30-day chart never scans the job history.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone


class CommandKind(models.TextChoices):
    APPLY_POLICY = "apply_policy", "Apply policy"
    BACKUP = "backup", "Back up now"
    RESTORE = "restore", "Restore"
    VERIFY = "verify", "Verify"
    CANCEL = "cancel", "Cancel"
    TAKEOVER = "takeover", "Take over a device"  # console/restore/takeover.py


class CommandState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


OPEN_COMMAND_STATES = (CommandState.PENDING, CommandState.SENT, CommandState.ACKNOWLEDGED)
FINAL_COMMAND_STATES = (CommandState.DONE, CommandState.FAILED, CommandState.EXPIRED)
#: what a (re)connecting device's stream is sent
DELIVERABLE_COMMAND_STATES = (CommandState.PENDING, CommandState.SENT)
#: the transitions' order: a command only moves to a higher rank
_RANK = {
    CommandState.PENDING: 0,
    CommandState.SENT: 1,
    CommandState.ACKNOWLEDGED: 2,
    CommandState.DONE: 3,
    CommandState.FAILED: 3,
    CommandState.EXPIRED: 3,
}


class CommandQuerySet(models.QuerySet):
    """The state machine's transitions, as conditional UPDATEs: each moves only
    the rows in an earlier state, so concurrent reports (two gateways, a
    replayed acknowledgement, a result before its acknowledgement) never move
    a command backwards. Each returns how many rows moved."""

    def advance(self, state: str, **fields) -> int:
        earlier = [s for s, rank in _RANK.items() if rank < _RANK[state]]
        return self.filter(state__in=earlier).update(state=state, **fields)

    def mark_sent(self) -> int:
        return self.advance(CommandState.SENT, sent_at=timezone.now(), attempts=F("attempts") + 1)

    def acknowledge(self, at=None) -> int:
        return self.advance(CommandState.ACKNOWLEDGED, acknowledged_at=at or timezone.now())

    def finish(self, ok: bool, error: str = "", at=None) -> int:
        state = CommandState.DONE if ok else CommandState.FAILED
        return self.advance(state, finished_at=at or timezone.now(), error=error or "")

    def expire(self, error: str, at=None) -> int:
        return self.advance(CommandState.EXPIRED, finished_at=at or timezone.now(), error=error)

    def open(self):
        return self.filter(state__in=OPEN_COMMAND_STATES)

    def deliverable(self, now=None):
        """Pending or sent and not expired: what a device's stream is (re)sent."""
        return self.filter(
            state__in=DELIVERABLE_COMMAND_STATES, expires_at__gt=now or timezone.now()
        )


class Command(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    device = models.ForeignKey("fleet.Device", on_delete=models.CASCADE, related_name="commands")
    kind = models.CharField(max_length=16, choices=CommandKind.choices)
    payload = models.JSONField(default=dict, blank=True)
    state = models.CharField(
        max_length=16, choices=CommandState.choices, default=CommandState.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Delivery attempts")
    error = models.TextField(blank=True)

    objects = CommandQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["device", "state"], name="cmd_device_state_idx"),
            models.Index(fields=["state", "expires_at"], name="cmd_state_expiry_idx"),
            models.Index(fields=["-created_at"], name="cmd_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} → {self.device_id} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_COMMAND_STATES

    # One command's transitions (the queryset's, on this row); True when it
    # moved. The row in memory is refreshed only then.
    def mark_sent(self) -> bool:
        return self._moved(Command.objects.filter(pk=self.pk).mark_sent())

    def acknowledge(self) -> bool:
        return self._moved(Command.objects.filter(pk=self.pk).acknowledge())

    def finish(self, ok: bool, error: str = "") -> bool:
        return self._moved(Command.objects.filter(pk=self.pk).finish(ok, error))

    def expire(self, error: str) -> bool:
        return self._moved(Command.objects.filter(pk=self.pk).expire(error))

    def _moved(self, count: int) -> bool:
        if count:
            self.refresh_from_db()
        return bool(count)


class JobKind(models.TextChoices):
    BACKUP = "backup", "Backup"
    RESTORE = "restore", "Restore"
    VERIFY = "verify", "Verify"
    PRUNE = "prune", "Prune"
    TEST_RESTORE = "test_restore", "Test restore"


class JobTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    CATCH_UP = "catch_up", "Catch-up"
    MANUAL = "manual", "On request"


class JobState(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class JobRun(models.Model):
    device = models.ForeignKey("fleet.Device", on_delete=models.CASCADE, related_name="job_runs")
    command = models.ForeignKey(
        Command, null=True, blank=True, on_delete=models.SET_NULL, related_name="job_runs"
    )
    kind = models.CharField(max_length=16, choices=JobKind.choices, default=JobKind.BACKUP)
    trigger = models.CharField(
        max_length=16, choices=JobTrigger.choices, default=JobTrigger.SCHEDULE
    )
    policy_revision = models.ForeignKey(
        "policies.PolicyRevision", null=True, blank=True, on_delete=models.SET_NULL
    )
    revision_hash = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress = models.FloatField(default=0.0, help_text="0.0 – 1.0")
    progress_detail = models.JSONField(default=dict, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    bytes_added = models.BigIntegerField(default=0)
    files_processed = models.BigIntegerField(default=0)
    warnings = models.JSONField(default=list, blank=True)
    warnings_count = models.PositiveIntegerField(default=0)
    snapshot_id = models.CharField(max_length=128, blank=True)
    error = models.TextField(blank=True)
    idempotency_key = models.CharField(
        max_length=128, null=True, blank=True, unique=True, help_text="Agent's key for the run"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["device", "-started_at"], name="job_device_started_idx"),
            models.Index(fields=["-started_at"], name="job_started_idx"),
            models.Index(fields=["state", "-started_at"], name="job_state_started_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.device_id} ({self.state})"

    @property
    def duration(self):
        if self.finished_at and self.started_at:
            return self.finished_at - self.started_at
        return None

    @property
    def progress_percent(self) -> int:
        return int(round((self.progress or 0) * 100))


class Snapshot(models.Model):
    device = models.ForeignKey("fleet.Device", on_delete=models.CASCADE, related_name="snapshots")
    snapshot_id = models.CharField(max_length=128)
    job_run = models.ForeignKey(JobRun, null=True, blank=True, on_delete=models.SET_NULL)
    taken_at = models.DateTimeField(default=timezone.now)
    file_count = models.BigIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    added_bytes = models.BigIntegerField(default=0)
    paths = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-taken_at"]
        constraints = [
            models.UniqueConstraint(fields=["device", "snapshot_id"], name="snapshot_device_uniq")
        ]
        indexes = [models.Index(fields=["device", "-taken_at"], name="snap_device_taken_idx")]

    def __str__(self) -> str:
        return self.snapshot_id


class DailyJobStats(models.Model):
    """Finished runs per day (UTC), for the 30-day chart."""

    day = models.DateField(unique=True)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    warnings = models.PositiveIntegerField(default=0, help_text="Succeeded runs with warnings")
    bytes_added = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return f"{self.day}: {self.succeeded} ok, {self.failed} failed"


class ReportReceipt(models.Model):
    """Idempotency keys of agent reports already applied (progress, heartbeat, results)."""

    key = models.CharField(max_length=160, unique=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.key
