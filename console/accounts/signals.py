"""Sign-ins in the audit log: who signed in from where, failed attempts and lockouts."""

from __future__ import annotations

from console.accounts import lockout
from console.audit.models import AuditEvent
from console.audit.services import Actor, record


def audit_login(sender, request, user, **kwargs) -> None:
    if request is None:
        return
    record(Actor.from_request(request, via=AuditEvent.Via.UI), "auth.login", user)


def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    """Aggregated: see console/accounts/lockout.py (a flood of failures
    must not flood the audit log)."""
    if request is None:
        return
    lockout.audit_failure(request, str(credentials.get("username", ""))[:150])


def audit_locked_out(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    if request is None:
        return
    lockout.audit_lockout(request, username, ip_address)
