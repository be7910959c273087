"""Sign-ins in the audit log: who signed in from where, and failed attempts."""

from __future__ import annotations

from console.audit.models import AuditEvent
from console.audit.services import Actor, record


def audit_login(sender, request, user, **kwargs) -> None:
    if request is None:
        return
    record(Actor.from_request(request, via=AuditEvent.Via.UI), "auth.login", user)


def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    if request is None:
        return
    username = str(credentials.get("username", ""))[:150]
    record(
        Actor.from_request(request, via=AuditEvent.Via.UI),
        "auth.login_failed",
        target_type="user",
        target_repr=username,
        after={"username": username},
    )
