"""What the gateway knows about live connections (the console's fleet models
own everything else). One row per device, written in batches."""

from django.db import models
from django.utils import timezone


class DeviceConnection(models.Model):
    device = models.OneToOneField(
        "fleet.Device", on_delete=models.CASCADE, primary_key=True, related_name="connection"
    )
    online = models.BooleanField(default=False, db_index=True)
    gateway_id = models.CharField(max_length=128, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    agent_state = models.CharField(max_length=32, blank=True, help_text="idle, backing_up, ...")
    pause_reason = models.CharField(max_length=64, blank=True)
    next_backup_at = models.DateTimeField(null=True, blank=True)
    outbox_size = models.PositiveIntegerField(default=0)
    next_cert_fingerprint = models.CharField(
        max_length=128,
        blank=True,
        help_text="A renewed certificate, accepted (and promoted) at its first use",
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.device_id} ({'online' if self.online else 'offline'})"
