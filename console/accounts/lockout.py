"""Sign-in lockout and its audit trail.

django-axes (settings: ``AXES_*``) counts failed sign-ins in the database, so
every console process shares the count, and locks sign-in once either the
account or the client address reaches ``AXES_FAILURE_LIMIT`` failures within
``AXES_COOLOFF_TIME``; that covers the login page and the API token endpoint,
which both go through ``django.contrib.auth.authenticate``. This module adds
what Cairn needs around it: the address the audit log uses, the message
("Too many failed sign-ins; try again in N minutes"), an aggregated audit
trail, and the Admin's unlock.

Audit aggregation: a stream of failures must not flood the append-only audit
log, so a failure is recorded only when it is the first of its (user name,
address) pair within the cool-off window, a lockout only when it is the first
for that user name or address within the window (with the failure count),
and attempts refused while locked not at all (the lockout row covers them).
"""

from __future__ import annotations

import ipaddress
import math
from datetime import timedelta

from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Max, Q
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone

from console.audit.models import AuditEvent
from console.audit.services import Actor, client_address, record

FAILED, LOCKED = "auth.login_failed", "auth.locked_out"


def client_ip(request) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: the same address the audit log records
    (REMOTE_ADDR, or X-Forwarded-For behind a trusted proxy)."""
    return client_address(request)


def _window() -> timedelta:
    return get_cool_off() or timedelta(minutes=15)


def minutes_left(username: str | None, address: str | None) -> int:
    """Whole minutes until the newest counted failure of this account or
    address ages out of the window (at least 1)."""
    match = Q(pk__in=[])
    if username:
        match |= Q(username=username)
    if address:
        match |= Q(ip_address=address)
    window = _window()
    newest = (
        AccessAttempt.objects.filter(match, attempt_time__gte=timezone.now() - window)
        .aggregate(newest=Max("attempt_time"))
        .get("newest")
    )
    if newest is None:
        return 1
    left = newest + window - timezone.now()
    return max(1, math.ceil(left.total_seconds() / 60))


def message(username: str | None, address: str | None) -> str:
    n = minutes_left(username, address)
    return (
        f"Too many failed sign-ins; try again in {n} minute{'s' if n != 1 else ''}, "
        "or ask an Admin to unlock the account."
    )


def is_locked_out(request) -> bool:
    """After a failed ``authenticate``: did axes refuse or lock this attempt?"""
    return bool(getattr(request, "axes_locked_out", False))


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: 429 with the message, as JSON for the API and
    as the sign-in page (with the message instead of the form's error) for
    the browser."""
    text = message(get_client_username(request, credentials), client_address(request))
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": text}, status=429)
    return render(request, "registration/login.html", {"locked": text}, status=429)


def _recent(action: str, match: Q) -> bool:
    since = timezone.now() - _window()
    return AuditEvent.objects.filter(match, action=action, at__gte=since).exists()


def audit_failure(request, username: str) -> None:
    """user_login_failed receiver body (console/accounts/signals.py)."""
    if is_locked_out(request):
        return
    actor = Actor.from_request(request)
    if _recent(FAILED, Q(target_repr=username, source_address=actor.address)):
        return
    record(
        actor,
        FAILED,
        target_type="user",
        target_repr=username,
        after={"username": username, "window_minutes": int(_window().total_seconds() // 60)},
    )


def audit_lockout(request, username: str | None, ip_address: str | None) -> None:
    """axes' user_locked_out receiver: one row per locked account or address per window."""
    username = str(username or "")[:150]
    actor = Actor.from_request(request)
    match = Q(source_address=actor.address) if actor.address else Q(pk__in=[])
    if username:
        match |= Q(target_repr=username)
    if _recent(LOCKED, match):
        return
    record(
        actor,
        LOCKED,
        target_type="user",
        target_repr=username,
        after={
            "username": username,
            "failures": getattr(request, "axes_failures_since_start", None),
            "limit": settings.AXES_FAILURE_LIMIT,
            "minutes": minutes_left(username, actor.address),
        },
    )


def unlock_user(actor: Actor, user) -> int:
    """Clear the failures counted against this account (not its addresses)."""
    cleared = reset(username=user.get_username())
    record(actor, "user.unlock", user, after={"cleared_failures": cleared})
    return cleared


def unlock_address(actor: Actor, address: str) -> int:
    """Clear the failures counted against one client address."""
    try:
        address = str(ipaddress.ip_address((address or "").strip()))
    except ValueError as exc:
        raise ValidationError({"address": ["Enter a valid IPv4 or IPv6 address."]}) from exc
    cleared = reset(ip=address)
    record(
        actor,
        "auth.unlock_address",
        target_type="address",
        target_id=address,
        target_repr=address,
        after={"cleared_failures": cleared},
    )
    return cleared
