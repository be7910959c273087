"""Notifications: what is sent to each channel, and sending it.

* ``queue`` turns fired and resolved alerts into Delivery rows, one per
  (channel, alert, event); more than BURST alerts in one pass for one channel
  become one summary delivery (a first pass over a neglected fleet must not
  send 5,000 e-mails). Digest channels get nothing here: ``queue_digests``
  sends them one message a day.
* ``send`` sends one delivery: e-mail through Django's mail backend, or an
  HTTP POST of JSON signed with HMAC-SHA256 (``X-Cairn-Signature:
  sha256=<hex of HMAC(secret, "<timestamp>." + body)>``, ``X-Cairn-Timestamp``).
  A failure raises ``RetryLater``; the Celery task retries with exponential
  backoff (console/alerts/tasks.py) until MAX_ATTEMPTS, then the delivery is
  marked failed.

Payload: ``text`` (what Slack's incoming webhooks and Teams' connectors
show) plus structured fields (``event``, ``alert``, ``device``, ``alerts``).
Host names and file names come from PCs: control characters are replaced
and Slack's control characters (&, <, >) escaped in ``text``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from console.alerts.models import (
    Alert,
    AlertState,
    Channel,
    ChannelKind,
    Delivery,
    DeliveryState,
    Event,
)
from console.alerts.rules import clean

BURST = 20
LISTED = 50
MAX_ATTEMPTS = 6
TIMEOUT = 10
DIGEST_EVERY = dt.timedelta(hours=23, minutes=30)
SIGNATURE_HEADER = "X-Cairn-Signature"
TIMESTAMP_HEADER = "X-Cairn-Timestamp"


class RetryLater(Exception):
    """Sending failed in a way worth retrying."""


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert_fields(alert: Alert) -> dict:
    return {
        "id": alert.pk,
        "rule": alert.rule,
        "rule_label": alert.get_rule_display(),
        "severity": alert.severity,
        "state": alert.state,
        "message": alert.message,
        "detail": alert.detail,
        "started_at": alert.started_at,
        "fired_at": alert.fired_at,
        "resolved_at": alert.resolved_at,
        "device": {"id": str(alert.device_id), "hostname": clean(alert.device.hostname, 100)},
    }


def _line(alert: Alert) -> str:
    host = clean(alert.device.hostname, 100)
    return f"{alert.get_rule_display()} on {host}: {alert.message}"


def payload_for(event: str, alerts: list[Alert], total: int | None = None) -> dict:
    total = len(alerts) if total is None else total
    verb = {Event.FIRED: "FIRING", Event.RESOLVED: "RESOLVED", Event.DIGEST: "DIGEST"}[event]
    if len(alerts) == 1 and event != Event.DIGEST:
        a = alerts[0]
        text = f"[Cairn] {verb} ({a.severity}): {_line(a)}"
        body = {"text": slack_escape(text), "event": event, "alert": alert_fields(a)}
        body["device"] = body["alert"]["device"]
        return body
    lines = [
        f"• {'resolved' if a.state == AlertState.RESOLVED else a.severity}: {_line(a)}"
        for a in alerts
    ]
    more = total - len(alerts)
    head = f"[Cairn] {verb}: {total} alert(s)"
    if event == Event.DIGEST:
        head = f"[Cairn] Daily digest: {total} alert(s) fired or resolved"
    text = "\n".join([head, *lines] + ([f"… and {more} more"] if more > 0 else []))
    return {
        "text": slack_escape(text),
        "event": event,
        "count": total,
        "alerts": [alert_fields(a) for a in alerts],
    }


def _channels(event: str):
    channels = Channel.objects.filter(enabled=True, digest=False)
    if event == Event.RESOLVED:
        channels = channels.filter(send_resolved=True)
    return list(channels)


def queue(fired: list, resolved: list) -> list[int]:
    """Delivery rows for these alert ids; returns the delivery ids."""
    out: list[int] = []
    for event, ids in ((Event.FIRED, fired), (Event.RESOLVED, resolved)):
        if not ids:
            continue
        channels = _channels(event)
        if not channels:
            continue
        alerts = list(Alert.objects.filter(pk__in=ids).select_related("device").order_by("pk"))
        for channel in channels:
            mine = [a for a in alerts if channel.wants(a.rule)]
            out.extend(_queue_for(channel, event, mine))
    return out


def _queue_for(channel: Channel, event: str, alerts: list[Alert]) -> list[int]:
    if not alerts:
        return []
    if len(alerts) > BURST:
        rows = [
            Delivery(
                channel=channel,
                event=event,
                payload=payload_for(event, alerts[:LISTED], len(alerts)),
            )
        ]
    else:
        rows = [
            Delivery(channel=channel, alert=a, event=event, payload=payload_for(event, [a]))
            for a in alerts
        ]
    return [d.pk for d in Delivery.objects.bulk_create(rows)]


def queue_digests(now=None) -> list[int]:
    """One digest delivery per digest channel due (a day since the last):
    the alerts that fired or resolved since then."""
    now = now or timezone.now()
    out = []
    for channel in Channel.objects.filter(enabled=True, digest=True):
        since = channel.last_digest_at or channel.created_at
        if now - since < DIGEST_EVERY:
            continue
        fired = Alert.objects.filter(fired_at__gt=since, fired_at__lte=now)
        resolved = Alert.objects.filter(resolved_at__gt=since, resolved_at__lte=now)
        alerts = [
            a
            for a in (fired | resolved).select_related("device").order_by("-started_at", "-id")
            if channel.wants(a.rule)
        ]
        Channel.objects.filter(pk=channel.pk).update(last_digest_at=now)
        if not alerts:
            continue
        d = Delivery.objects.create(
            channel=channel,
            event=Event.DIGEST,
            payload=payload_for(Event.DIGEST, alerts[:LISTED], len(alerts)),
        )
        out.append(d.pk)
    return out


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def send(delivery_id: int) -> Delivery:
    """Send one delivery. Raises RetryLater on a failure worth retrying
    (below MAX_ATTEMPTS); marks it failed after the last attempt."""
    d = Delivery.objects.select_related("channel").get(pk=delivery_id)
    if d.state != DeliveryState.PENDING:
        return d
    d.attempts += 1
    try:
        if d.channel.kind == ChannelKind.EMAIL:
            _email(d)
        else:
            _webhook(d)
    except RetryLater as exc:
        d.last_error = str(exc)[:500]
        if d.attempts >= MAX_ATTEMPTS:
            d.state = DeliveryState.FAILED
        d.save(update_fields=["attempts", "last_error", "state"])
        if d.state == DeliveryState.PENDING:
            raise
        return d
    d.state, d.sent_at, d.last_error = DeliveryState.SENT, timezone.now(), ""
    d.save(update_fields=["attempts", "last_error", "state", "sent_at"])
    return d


def _email(d: Delivery) -> None:
    text = d.payload.get("text", "")
    # Slack escaping undone for e-mail (plain text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    subject = text.splitlines()[0][:200] if text else "[Cairn] alert"
    try:
        send_mail(
            subject,
            text + "\n",
            settings.DEFAULT_FROM_EMAIL,
            list(d.channel.recipients),
            fail_silently=False,
        )
    except Exception as exc:  # SMTP errors of every kind are worth a retry
        raise RetryLater(f"e-mail: {exc}") from exc


def _webhook(d: Delivery) -> None:
    body = json.dumps(d.payload, cls=DjangoJSONEncoder, separators=(",", ":")).encode()
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Cairn-Alerts/1",
        TIMESTAMP_HEADER: ts,
    }
    secret = d.channel.secret
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, ts, body)
    req = urllib.request.Request(d.channel.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310 (http/https only: validated)
            resp.read(1024)
    except urllib.error.HTTPError as exc:
        raise RetryLater(f"HTTP {exc.code} from the webhook") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise RetryLater(f"webhook unreachable: {exc}") from exc
