"""Template helpers: sizes, relative times, status badges with text labels."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html

from console.jobs import openfiles

register = template.Library()

STATUS_LABELS = {
    "protected": "Protected",
    "at_risk": "At risk",
    "unprotected": "Unprotected",
    "revoked": "Revoked",
    "running": "Running",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "pending": "Pending",
    "sent": "Sent",
    "acknowledged": "Acknowledged",
    "done": "Done",
    "expired": "Expired",
    "active": "Active",
    "used up": "Used up",
    "in_sync": "Applied",
    "out_of_sync": "Not yet applied",
}
TONES = {
    "protected": "ok",
    "succeeded": "ok",
    "done": "ok",
    "active": "ok",
    "in_sync": "ok",
    "at_risk": "warn",
    "pending": "info",
    "sent": "info",
    "acknowledged": "info",
    "running": "info",
    "out_of_sync": "warn",
    "unprotected": "bad",
    "failed": "bad",
    "revoked": "muted",
    "expired": "muted",
    "cancelled": "muted",
    "used up": "muted",
}
ICONS = {"ok": "●", "warn": "▲", "bad": "■", "info": "◆", "muted": "○"}


@register.simple_tag
def badge(status: str, label: str | None = None):
    """A status pill: colour *and* a text label (and a shape for colour-blind users)."""
    status = str(status or "")
    tone = TONES.get(status, "muted")
    text = label or STATUS_LABELS.get(status, status.replace("_", " ").capitalize())
    return format_html(
        '<span class="badge tone-{}"><span aria-hidden="true">{}</span> {}</span>',
        tone,
        ICONS[tone],
        text,
    )


@register.simple_tag
def job_badge(run):
    """A job's outcome as an admin reads it: "Succeeded with inconsistent
    files" (torn files) apart from plain "Succeeded"."""
    label = openfiles.outcome(run)
    if label == openfiles.INCONSISTENT_LABEL:
        return badge("at_risk", label)
    return badge(run.state)


@register.filter
def bytes_h(value) -> str:
    try:
        n = float(value or 0)
    except (TypeError, ValueError):
        return "—"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"


@register.filter
def ago(value) -> str:
    """Compact relative time: “5 min ago”, “3 h ago”, “12 d ago”, “never”."""
    if not value:
        return "never"
    if not isinstance(value, datetime):
        return str(value)
    delta = timezone.now() - value
    future = delta < timedelta(0)
    seconds = abs(delta.total_seconds())
    if seconds < 60:
        text = "just now" if not future else "in under a minute"
        return text
    if seconds < 3600:
        text = f"{int(seconds // 60)} min"
    elif seconds < 86400 * 2:
        text = f"{int(seconds // 3600)} h"
    else:
        text = f"{int(seconds // 86400)} d"
    return f"in {text}" if future else f"{text} ago"


@register.filter
def duration(value) -> str:
    if not value:
        return "—"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60} min"


@register.filter
def words(value) -> str:
    """An agent's machine word ("on_battery", "backing_up") as text."""
    return str(value or "").replace("_", " ")


@register.filter
def pct(part, whole) -> int:
    try:
        return round(100 * part / whole) if whole else 0
    except (TypeError, ValueError):
        return 0


@register.filter
def get(mapping, key):
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.simple_tag
def sort_link(flt, key: str, label: str):
    """Column header that toggles ascending/descending sort and shows the direction."""
    current = flt.sort
    if current == key:
        target, arrow = f"-{key}", " ↑"
    elif current == f"-{key}":
        target, arrow = key, " ↓"
    else:
        target, arrow = key, ""
    if target.lstrip("-") == "hostname" and target == "hostname":
        qs = flt.querystring(sort="")
    else:
        qs = flt.querystring(sort=target)
    return format_html('<a href="?{}" class="sort">{}{}</a>', qs, label, arrow)


def _short(value, limit: int = 40) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@register.filter
def change_summary(event) -> str:
    """One line for the audit table: changed fields as “field: before → after”."""
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    parts = []
    if isinstance(after.get("changes"), list):
        changed = [c.get("path", "?") for c in after["changes"]]
        parts.append(
            "settings changed: " + ", ".join(changed[:4]) + ("…" if len(changed) > 4 else "")
        )
    for key in list(after) + [k for k in before if k not in after]:
        if key in ("changes", "spec"):
            continue
        if key in before and key in after:
            if before[key] != after[key]:
                parts.append(f"{key}: {_short(before[key])} → {_short(after[key])}")
        elif key in after:
            parts.append(f"{key}: {_short(after[key])}")
        else:
            parts.append(f"{key} was {_short(before[key])}")
    return "; ".join(parts)
