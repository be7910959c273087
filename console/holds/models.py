"""Legal holds and offboarding records (console/holds/services.py, offboarding.py).

A hold covers a device, a user (every device whose ``owner`` is that name,
now or later) or one snapshot of a device. While a hold is active
(``released_at`` empty), retention never forgets the snapshots it covers and
offboarding never deletes the device's repository. Rows are never deleted:
a released hold stays, with who released it and why.

An ``Offboarding`` row is the record of a revoked device's repository being
deleted once the organisation's retention for revoked devices ran out: who
(the system, or an admin), when, what (the device's identity is copied, the
device row itself stays revoked) and how many bytes and objects.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Scope(models.TextChoices):
    DEVICE = "device", "Device"
    USER = "user", "User"
    SNAPSHOT = "snapshot", "Snapshot"


class LegalHold(models.Model):
    scope = models.CharField(max_length=16, choices=Scope.choices)
    device = models.ForeignKey(
        "fleet.Device", null=True, blank=True, on_delete=models.PROTECT, related_name="holds"
    )
    owner = models.CharField(max_length=255, blank=True, help_text="User held (scope user)")
    snapshot_id = models.CharField(max_length=128, blank=True, help_text="Scope snapshot")
    case_name = models.CharField(max_length=200)
    reason = models.TextField(max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    release_reason = models.TextField(max_length=2000, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["released_at", "scope"], name="hold_active_idx")]

    def __str__(self) -> str:
        return f"{self.case_name}: {self.subject}"

    @property
    def active(self) -> bool:
        return self.released_at is None

    @property
    def subject(self) -> str:
        if self.scope == Scope.USER:
            return f"user {self.owner}"
        name = self.device.hostname if self.device_id else "?"
        if self.scope == Scope.SNAPSHOT:
            return f"snapshot {self.snapshot_id[:12]} of {name}"
        return f"device {name}"


class Offboarding(models.Model):
    """A revoked device's repository deleted (the deletion carried out and its record)."""

    device = models.OneToOneField(
        "fleet.Device", on_delete=models.PROTECT, related_name="offboarding"
    )
    hostname = models.CharField(max_length=255)
    owner = models.CharField(max_length=255, blank=True)
    revoked_at = models.DateTimeField(null=True)
    deleted_at = models.DateTimeField(default=timezone.now)
    deleted_by = models.CharField(max_length=150, help_text="'system' or the admin's user name")
    deleted_bytes = models.BigIntegerField(default=0)
    deleted_objects = models.BigIntegerField(default=0)
    snapshots = models.JSONField(default=list, help_text="Snapshot ids deleted")

    class Meta:
        ordering = ["-deleted_at", "-id"]

    def __str__(self) -> str:
        return f"{self.hostname} deleted {self.deleted_at:%Y-%m-%d}"
