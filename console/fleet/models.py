"""The fleet: devices, the groups they belong to, and enrollment tokens.

Device carries denormalised state (last backup, last success, protection
deadlines, effective policy revision) so that the dashboard can count and
filter tens of thousands of devices with index scans instead of joining the
job history. Those columns are written only by service functions
(console/fleet/services.py, console/jobs/services.py,
console/policies/services.py).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class OS(models.TextChoices):
    WINDOWS = "windows", "Windows"
    MACOS = "macos", "macOS"
    LINUX = "linux", "Linux"


class Protection(models.TextChoices):
    """A device's protection, derived from its last successful backup and its RPO."""

    PROTECTED = "protected", "Protected"
    AT_RISK = "at_risk", "At risk"
    UNPROTECTED = "unprotected", "Unprotected"
    REVOKED = "revoked", "Revoked"


# A device is *at risk* between one and AT_RISK_FACTOR times its RPO after its
# last successful backup, and *unprotected* after that (or if it never had one).
AT_RISK_FACTOR = 3
DEFAULT_RPO = timedelta(hours=24)


class DeviceGroup(models.Model):
    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    is_demo = models.BooleanField(default=False, help_text="Created by seed_demo")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Device(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    hostname = models.CharField(max_length=255, db_index=True)
    os = models.CharField(max_length=16, choices=OS.choices, db_index=True)
    os_version = models.CharField(max_length=64, blank=True)
    agent_version = models.CharField(max_length=32, blank=True)
    owner = models.CharField(max_length=255, blank=True, help_text="User of the PC")
    groups = models.ManyToManyField(DeviceGroup, related_name="devices", blank=True)
    enrolled_at = models.DateTimeField(default=timezone.now)
    enrollment_token = models.ForeignKey(
        "fleet.EnrollmentToken", null=True, blank=True, on_delete=models.SET_NULL
    )
    last_seen_at = models.DateTimeField(null=True, blank=True, db_index=True)
    cert_fingerprint = models.CharField(
        max_length=128, blank=True, db_index=True, help_text="SHA-256 of the device certificate"
    )
    cert_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="notAfter of the pinned device certificate"
    )
    revoked = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    # --- denormalised job state (console/jobs/services.py keeps these) -------
    last_backup_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_job_state = models.CharField(max_length=16, blank=True)
    last_error = models.TextField(blank=True)
    failing = models.BooleanField(
        default=False, help_text="The most recent backup of this device failed"
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    storage_bytes = models.BigIntegerField(default=0, help_text="Repository size reported")
    # Protection deadlines: last_success_at + RPO and + AT_RISK_FACTOR x RPO.
    # Status is computed from these against *now*, so it never goes stale.
    protected_until = models.DateTimeField(null=True, blank=True)
    at_risk_until = models.DateTimeField(null=True, blank=True)

    # --- desired vs. reported policy (console/policies/services.py) ----------
    effective_policy = models.ForeignKey(
        "policies.Policy", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    effective_revision = models.ForeignKey(
        "policies.PolicyRevision",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="targeted_devices",
        help_text="Revision of the winning policy",
    )
    effective_hash = models.CharField(
        max_length=64, blank=True, help_text="Hash of the merged effective policy"
    )
    rpo = models.DurationField(default=DEFAULT_RPO)
    applied_hash = models.CharField(
        max_length=64, blank=True, help_text="Effective-policy hash the agent reports running"
    )
    applied_at = models.DateTimeField(null=True, blank=True)

    # --- offline spool lease (console/storage/grants.py lease_spool) --
    # While a lease is unexpired, maintenance holds back the sweep of prune
    # markers written after it was issued (console/storage/maintenance.py).
    spool_lease_issued_at = models.DateTimeField(null=True, blank=True)
    spool_lease_expires_at = models.DateTimeField(null=True, blank=True)

    is_demo = models.BooleanField(default=False, help_text="Created by seed_demo")

    class Meta:
        ordering = ["hostname"]
        indexes = [
            models.Index(fields=["revoked", "protected_until"], name="dev_protected_idx"),
            models.Index(fields=["revoked", "at_risk_until"], name="dev_atrisk_idx"),
            models.Index(fields=["revoked", "failing"], name="dev_failing_idx"),
            models.Index(fields=["effective_policy", "hostname"], name="dev_policy_idx"),
            models.Index(fields=["effective_revision", "applied_hash"], name="dev_rollout_idx"),
            models.Index(fields=["last_success_at"], name="dev_last_success_idx"),
            models.Index(fields=["last_backup_at"], name="dev_last_backup_idx"),
            models.Index(fields=["os", "hostname"], name="dev_os_idx"),
        ]

    def __str__(self) -> str:
        return self.hostname

    def protection(self, now=None) -> str:
        now = now or timezone.now()
        if self.revoked:
            return Protection.REVOKED
        if self.protected_until and self.protected_until >= now:
            return Protection.PROTECTED
        if self.at_risk_until and self.at_risk_until >= now:
            return Protection.AT_RISK
        return Protection.UNPROTECTED

    @property
    def status(self) -> str:
        return self.protection()

    @property
    def status_label(self) -> str:
        return Protection(self.status).label

    @property
    def policy_in_sync(self) -> bool:
        return bool(self.effective_hash) and self.effective_hash == self.applied_hash


class EnrollmentToken(models.Model):
    """A secret an agent presents once to enroll. Only its SHA-256 is stored."""

    name = models.CharField(max_length=120, help_text="What the token is for")
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise it")
    group = models.ForeignKey(
        DeviceGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="tokens"
    )
    expires_at = models.DateTimeField()
    max_uses = models.PositiveIntegerField(default=1)
    uses_remaining = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def state(self, now=None) -> str:
        now = now or timezone.now()
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        if self.uses_remaining <= 0:
            return "used up"
        return "active"

    @property
    def is_usable(self) -> bool:
        return self.state() == "active"
