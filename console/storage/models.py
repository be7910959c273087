"""Object-storage targets the fleet writes to, and the organisation key configuration."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from console.storage import crypto


class StorageTarget(models.Model):
    """An S3-compatible bucket. Credentials (for the console's own maintenance
    jobs) are stored encrypted; see console/storage/crypto.py."""

    name = models.CharField(max_length=120, unique=True)
    endpoint = models.CharField(max_length=255, help_text="host:port or URL of the S3 endpoint")
    bucket = models.CharField(max_length=255)
    region = models.CharField(max_length=64, default="us-east-1")
    prefix = models.CharField(max_length=255, blank=True, help_text="Usually the organisation")
    use_tls = models.BooleanField(default=True)
    access_key_encrypted = models.TextField(blank=True)
    secret_key_encrypted = models.TextField(blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    # Secrets never leave the model in clear except through these accessors.
    @property
    def access_key(self) -> str:
        return crypto.decrypt(self.access_key_encrypted)

    @access_key.setter
    def access_key(self, value: str) -> None:
        self.access_key_encrypted = crypto.encrypt(value)

    @property
    def secret_key(self) -> str:
        return crypto.decrypt(self.secret_key_encrypted)

    @secret_key.setter
    def secret_key(self, value: str) -> None:
        self.secret_key_encrypted = crypto.encrypt(value)

    @property
    def has_credentials(self) -> bool:
        return bool(self.access_key_encrypted and self.secret_key_encrypted)


class OrgKeyConfig(models.Model):
    """Where the organisation master key lives (a file today; KMS/HSM later).

    The key itself is never stored in the database: only its source, location
    and a fingerprint to detect an unexpected change."""

    class Source(models.TextChoices):
        FILE = "file", "Key file on the console host"
        KMS = "kms", "External KMS (not yet supported)"

    source = models.CharField(max_length=16, choices=Source.choices, default=Source.FILE)
    location = models.CharField(max_length=500, help_text="File path or KMS key id")
    fingerprint = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.get_source_display()}: {self.location}"


class ObservedSnapshot(models.Model):
    """A snapshot object of a device repository as the console observed it.

    Why: a snapshot's ``time``, host name and paths are written by the agent,
    so a compromised device can date snapshots in 2099 and make a retention
    run that trusts them forget every real one (issue 10). Retention on the
    console's path decides on ``observed_at`` instead: the earliest of the
    console's first sight of the object, its storage ``LastModified`` and
    the receipt of the job result that named it, none of which the device
    controls. The agent's time is kept for display and for the plausibility
    check only (docs/security.md, "What a compromised device can do to its
    own history")."""

    device = models.ForeignKey(
        "fleet.Device", on_delete=models.CASCADE, related_name="observed_snapshots"
    )
    snapshot_id = models.CharField(max_length=128)
    #: when the console first listed the object (its own clock)
    first_seen_at = models.DateTimeField(default=timezone.now)
    #: the object store's LastModified (the storage server's clock)
    stored_at = models.DateTimeField(null=True, blank=True)
    #: the time that counts for retention: the earliest of the above and the
    #: receipt of the succeeded backup result that named the snapshot
    observed_at = models.DateTimeField()
    #: what the agent wrote in the snapshot (shown, never decisive)
    agent_time = models.DateTimeField(null=True, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    paths = models.JSONField(default=list, blank=True)
    #: the succeeded backup run whose result named this snapshot
    job_run = models.ForeignKey(
        "jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: implausible (dated in the future, or long before it was stored):
    #: always kept, never counted by retention, audited (alertable)
    suspicious = models.BooleanField(default=False)
    suspicious_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-observed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "snapshot_id"], name="observed_snapshot_device_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["device", "suspicious"], name="observed_snap_suspicious_idx")
        ]

    def __str__(self) -> str:
        return self.snapshot_id

    @property
    def trusted(self) -> bool:
        """Observed good: a backup the console saw succeed named it, and its
        agent time is plausible."""
        return self.job_run_id is not None and not self.suspicious


class VerificationState(models.Model):
    """Where a device's server-side verification stands (console/storage/
    verification.py): the rotating read's cursor through the repository's
    packs, when the current cycle began, and the last runs."""

    device = models.OneToOneField(
        "fleet.Device", on_delete=models.CASCADE, related_name="verification_state"
    )
    #: the last pack id read in the current cycle ("" = start of a cycle)
    cursor = models.CharField(max_length=64, blank=True)
    cycle_started_at = models.DateTimeField(null=True, blank=True)
    last_verify_at = models.DateTimeField(null=True, blank=True)
    last_test_restore_at = models.DateTimeField(null=True, blank=True)
    #: the last finished runs, for the device page (one query)
    last_verify_run = models.ForeignKey(
        "jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_test_restore_run = models.ForeignKey(
        "jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"verification of {self.device_id}"


class RestoreAccess(models.Model):
    """One device's time-limited read access to another device's repository,
    for a restore onto another device (console/storage/restore_access.py):
    the key file of the one-time key written into the source repository, and
    the window in which the gateway signs GET/HEAD/LIST of the source prefix
    for the target (console/storage/grants.py ``grant_restore_read``)."""

    source = models.ForeignKey("fleet.Device", on_delete=models.CASCADE, related_name="+")
    target = models.ForeignKey("fleet.Device", on_delete=models.CASCADE, related_name="+")
    key_file = models.CharField(max_length=64)
    opened_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"restore access {self.source_id} -> {self.target_id}"

    def open_at(self, now) -> bool:
        return self.closed_at is None and self.expires_at > now
