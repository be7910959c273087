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
