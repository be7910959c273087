"""What admins and operators change about alerts; every change is audited.

Admin: thresholds (organisation default and per group), hold-downs,
channels. Operator (and Admin): acknowledge an alert. Validation here, so
the dashboard and the API refuse the same input with the same message.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from console.alerts.evaluation import settings_row
from console.alerts.models import (
    Alert,
    AlertSettings,
    AlertState,
    Channel,
    ChannelKind,
    Rule,
    Thresholds,
)
from console.audit.services import Actor, record

MAX_RECIPIENTS = 50
MAX_MINUTES = 7 * 24 * 60
BOUNDS = {
    "failures_in_a_row": (1, 1000),
    "not_seen_days": (1, 3650),
    "growth_window_hours": (1, 24 * 90),
    "growth_bytes": (1, 2**62),
    "repository_limit_bytes": (0, 2**62),
    "storage_full_percent": (1, 100),
    "cert_expiry_days": (0, 3650),
    "offline_allowance_hours": (0, 24 * 365),
}


class AlertError(ValueError):
    """Input refused, with a message per field: ``errors`` {field: message}."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _state(obj, fields) -> dict:
    return {f: getattr(obj, f) for f in fields}


THRESHOLD_FIELDS = Thresholds.RULE_FIELDS + Thresholds.VALUE_FIELDS


def check_thresholds(values: dict) -> None:
    errors = {}
    for name, value in values.items():
        if name in Thresholds.RULE_FIELDS:
            if not isinstance(value, bool):
                errors[name] = "true or false"
        elif name in BOUNDS:
            low, high = BOUNDS[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                errors[name] = f"a whole number from {low} to {high}"
        else:
            errors[name] = "unknown field"
    if errors:
        raise AlertError(errors)


@transaction.atomic
def save_thresholds(actor: Actor, group, values: dict) -> Thresholds:
    """Create or update the thresholds of ``group`` (None: the organisation
    default). Fields not given keep their value (a new group row starts from
    the organisation default)."""
    check_thresholds(values)
    row = Thresholds.objects.filter(group=group).first() if group else None
    if group is None:
        row = Thresholds.objects.filter(group__isnull=True).first()
    created = row is None
    if created:
        base = Thresholds.objects.filter(group__isnull=True).first()
        row = Thresholds(group=group)
        if base is not None:
            for f in THRESHOLD_FIELDS:
                setattr(row, f, getattr(base, f))
    before = None if created else _state(row, THRESHOLD_FIELDS)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = timezone.now()
    row.save()
    record(
        actor,
        "alerts.thresholds." + ("create" if created else "update"),
        row,
        before=before,
        after=_state(row, THRESHOLD_FIELDS),
    )
    return row


@transaction.atomic
def delete_thresholds(actor: Actor, row: Thresholds) -> None:
    if row.group_id is None:
        raise AlertError({"group": "the organisation default cannot be deleted"})
    record(actor, "alerts.thresholds.delete", row, before=_state(row, THRESHOLD_FIELDS))
    row.delete()


@transaction.atomic
def save_settings(
    actor: Actor, open_after_minutes: int, resolve_after_minutes: int
) -> AlertSettings:
    errors = {}
    for name, value in (
        ("open_after_minutes", open_after_minutes),
        ("resolve_after_minutes", resolve_after_minutes),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MINUTES:
            errors[name] = f"a whole number of minutes from 0 to {MAX_MINUTES}"
    if errors:
        raise AlertError(errors)
    row = settings_row(lock=True)
    fields = ("open_after_minutes", "resolve_after_minutes")
    before = _state(row, fields)
    row.open_after_minutes, row.resolve_after_minutes = open_after_minutes, resolve_after_minutes
    row.updated_at = timezone.now()
    row.save()
    record(
        actor,
        "alerts.settings.update",
        row,
        before=before,
        after=_state(row, fields),
        target_repr="alert hold-downs",
    )
    return row


CHANNEL_FIELDS = (
    "name",
    "kind",
    "recipients",
    "url",
    "rules",
    "send_resolved",
    "digest",
    "enabled",
)


def _check_channel(data: dict) -> None:
    errors = {}
    name = (data.get("name") or "").strip()
    if not name or len(name) > 120:
        errors["name"] = "a name of 1 to 120 characters"
    kind = data.get("kind")
    if kind not in ChannelKind.values:
        errors["kind"] = f"one of {', '.join(ChannelKind.values)}"
    recipients = data.get("recipients") or []
    if kind == ChannelKind.EMAIL:
        if not recipients or len(recipients) > MAX_RECIPIENTS:
            errors["recipients"] = f"1 to {MAX_RECIPIENTS} e-mail addresses"
        else:
            for r in recipients:
                try:
                    validate_email(r)
                except DjangoValidationError:
                    errors["recipients"] = f"not an e-mail address: {str(r)[:100]}"
                    break
    if kind == ChannelKind.WEBHOOK:
        url = data.get("url") or ""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 500:
            errors["url"] = "an http:// or https:// URL (up to 500 characters)"
    unknown = [r for r in data.get("rules") or [] if r not in Rule.values]
    if unknown:
        errors["rules"] = f"unknown rule(s): {', '.join(map(str, unknown))[:200]}"
    if errors:
        raise AlertError(errors)


def _channel_state(c: Channel) -> dict:
    state = _state(c, CHANNEL_FIELDS)
    state["secret"] = "set" if c.secret_encrypted else ""  # never the secret itself
    return state


@transaction.atomic
def save_channel(actor: Actor, channel: Channel | None, data: dict) -> Channel:
    """Create (channel None) or update a channel. ``data["secret"]``: a new
    HMAC secret; absent or None keeps the current one, "" removes it."""
    created = channel is None
    merged = {} if created else _state(channel, CHANNEL_FIELDS)
    merged.update({k: v for k, v in data.items() if k in CHANNEL_FIELDS})
    _check_channel(merged)
    if (
        Channel.objects.filter(name=merged["name"].strip())
        .exclude(pk=None if created else channel.pk)
        .exists()
    ):
        raise AlertError({"name": "a channel with this name exists"})
    before = None if created else _channel_state(channel)
    channel = channel or Channel()
    for f in CHANNEL_FIELDS:
        if f in merged:
            setattr(channel, f, merged[f])
    channel.name = channel.name.strip()
    if channel.kind == ChannelKind.EMAIL:
        channel.url = ""
    else:
        channel.recipients = []
    if data.get("secret") is not None:
        channel.secret = data["secret"]
    channel.save()
    record(
        actor,
        "alerts.channel." + ("create" if created else "update"),
        channel,
        before=before,
        after=_channel_state(channel),
    )
    return channel


@transaction.atomic
def delete_channel(actor: Actor, channel: Channel) -> None:
    record(actor, "alerts.channel.delete", channel, before=_channel_state(channel))
    channel.delete()


@transaction.atomic
def acknowledge(actor: Actor, alert: Alert) -> Alert:
    """Mark an open alert as seen by someone (it keeps firing until its
    condition ends). Acknowledging twice changes nothing."""
    if alert.state == AlertState.RESOLVED:
        raise AlertError({"state": "this alert is resolved"})
    if alert.acknowledged_at is None:
        alert.acknowledged_at = timezone.now()
        alert.acknowledged_by = actor.user
        alert.save(update_fields=["acknowledged_at", "acknowledged_by"])
        record(actor, "alerts.alert.acknowledge", alert)
    return alert
