"""Alert thresholds (organisation default and per group), alerts, notification
channels and their deliveries.

* Thresholds: one row with ``group`` empty is the organisation default; a row
  per group overrides it for that group's devices (a device in several groups
  gets the strictest value of each field: it alerts if any of its groups would).
* Alert: one per (rule, device) while open (a partial unique constraint), from
  *pending* (condition seen, hold-down running) to *firing* (notified) to
  *resolved* (condition gone for the resolve hold-down; notified again).
* Channel: e-mail recipients or a webhook URL (its HMAC secret encrypted),
  immediate or as a daily digest.
* Delivery: one notification to one channel, retried with backoff.
"""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from console.storage import crypto


class Rule(models.TextChoices):
    OUT_OF_RPO = "out_of_rpo", "Out of RPO"
    FAILURES = "failures", "Failures in a row"
    NOT_SEEN = "not_seen", "Not seen"
    DAMAGE = "damage", "Verification found damage"
    GROWTH = "growth", "Repository growth"
    STORAGE_FULL = "storage_full", "Storage nearly full"
    CERT_EXPIRY = "cert_expiry", "Certificate about to expire"
    OFFLINE_ALLOWANCE = "offline_allowance", "Offline allowance running out"


class Severity(models.TextChoices):
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


SEVERITY = {
    Rule.OUT_OF_RPO: Severity.CRITICAL,
    Rule.FAILURES: Severity.WARNING,
    Rule.NOT_SEEN: Severity.WARNING,
    Rule.DAMAGE: Severity.CRITICAL,
    Rule.GROWTH: Severity.WARNING,
    Rule.STORAGE_FULL: Severity.CRITICAL,
    Rule.CERT_EXPIRY: Severity.WARNING,
    Rule.OFFLINE_ALLOWANCE: Severity.WARNING,
}

GIB = 1024**3


class Thresholds(models.Model):
    group = models.OneToOneField(
        "fleet.DeviceGroup",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_thresholds",
        help_text="Empty: the organisation default",
    )
    # which rules are on
    out_of_rpo = models.BooleanField(default=True)
    failures = models.BooleanField(default=True)
    not_seen = models.BooleanField(default=True)
    damage = models.BooleanField(default=True)
    growth = models.BooleanField(default=True)
    storage_full = models.BooleanField(default=True)
    cert_expiry = models.BooleanField(default=True)
    offline_allowance = models.BooleanField(default=True)
    # their thresholds
    failures_in_a_row = models.PositiveIntegerField(default=3)
    not_seen_days = models.PositiveIntegerField(default=7)
    growth_window_hours = models.PositiveIntegerField(default=24)
    growth_bytes = models.BigIntegerField(default=50 * GIB)
    repository_limit_bytes = models.BigIntegerField(
        default=0, help_text="Repository size allowed per device; 0: no limit (rule off)"
    )
    storage_full_percent = models.PositiveIntegerField(default=90)
    cert_expiry_days = models.PositiveIntegerField(default=30)
    offline_allowance_hours = models.PositiveIntegerField(default=24)
    updated_at = models.DateTimeField(default=timezone.now)

    RULE_FIELDS = tuple(r.value for r in Rule)
    VALUE_FIELDS = (
        "failures_in_a_row",
        "not_seen_days",
        "growth_window_hours",
        "growth_bytes",
        "repository_limit_bytes",
        "storage_full_percent",
        "cert_expiry_days",
        "offline_allowance_hours",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group"],
                condition=Q(group__isnull=True),
                name="alert_thresholds_one_default",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"Thresholds for {self.group or 'the organisation'}"


class AlertSettings(models.Model):
    """Organisation-wide hold-downs (one row)."""

    open_after_minutes = models.PositiveIntegerField(
        default=15, help_text="A condition must hold this long before an alert fires"
    )
    resolve_after_minutes = models.PositiveIntegerField(
        default=60, help_text="A firing alert resolves after its condition is gone this long"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return "alert hold-downs"


class AlertState(models.TextChoices):
    PENDING = "pending", "Pending"
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


OPEN_STATES = (AlertState.PENDING, AlertState.FIRING)


class Alert(models.Model):
    rule = models.CharField(max_length=32, choices=Rule.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    device = models.ForeignKey("fleet.Device", on_delete=models.CASCADE, related_name="alerts")
    state = models.CharField(max_length=16, choices=AlertState.choices)
    message = models.CharField(max_length=500)
    detail = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    #: when the condition was first seen (hold-down starts)
    started_at = models.DateTimeField()
    #: when it fired (notified)
    fired_at = models.DateTimeField(null=True, blank=True)
    #: while firing: since when the condition has been gone
    clear_since = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "device"],
                condition=Q(state__in=("pending", "firing")),
                name="alert_one_open_per_rule_device",
            )
        ]
        indexes = [
            models.Index(fields=["state", "-started_at"], name="alert_state_idx"),
            models.Index(fields=["device", "-started_at"], name="alert_device_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_rule_display()} on {self.device_id} ({self.state})"


class ChannelKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook (JSON, signed)"


class Channel(models.Model):
    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    recipients = models.JSONField(default=list, blank=True, help_text="E-mail addresses")
    url = models.URLField(max_length=500, blank=True)
    secret_encrypted = models.TextField(blank=True)
    rules = models.JSONField(default=list, blank=True, help_text="Rules sent; empty: all")
    send_resolved = models.BooleanField(default=True)
    digest = models.BooleanField(default=False, help_text="A daily digest instead of each alert")
    enabled = models.BooleanField(default=True)
    last_digest_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted) if self.secret_encrypted else ""

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_encrypted = crypto.encrypt(value) if value else ""

    def wants(self, rule: str) -> bool:
        return not self.rules or rule in self.rules


class Event(models.TextChoices):
    FIRED = "fired", "Fired"
    RESOLVED = "resolved", "Resolved"
    DIGEST = "digest", "Daily digest"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=16, choices=Event.choices)
    payload = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event} → {self.channel_id} ({self.state})"
