"""Writing the audit log. Every service function that changes state calls
``record`` with the Actor that asked for the change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from console.audit.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who asks for a change, from where, and through which door (ui/api/system)."""

    user: Any = None
    address: str | None = None
    via: str = AuditEvent.Via.SYSTEM

    @classmethod
    def from_request(cls, request, via: str | None = None) -> Actor:
        if via is None:
            via = AuditEvent.Via.API if request.path.startswith("/api/") else AuditEvent.Via.UI
        user = getattr(request, "user", None)
        return cls(
            user=user if user is not None and user.is_authenticated else None,
            address=client_address(request),
            via=via,
        )

    @property
    def name(self) -> str:
        return self.user.get_username() if self.user is not None else "system"


SYSTEM = Actor()


def client_address(request) -> str | None:
    """The client's address: REMOTE_ADDR, or the first X-Forwarded-For hop when
    CAIRN_TRUST_X_FORWARDED_FOR is on (the console sits behind a proxy)."""
    if getattr(settings, "CAIRN_TRUST_X_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


def jsonable(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def record(
    actor: Actor,
    action: str,
    target: Any = None,
    *,
    before: Any = None,
    after: Any = None,
    target_type: str | None = None,
    target_id: str | None = None,
    target_repr: str | None = None,
) -> AuditEvent:
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_id = target_id or str(target.pk)
        target_repr = target_repr or str(target)
    return AuditEvent.objects.create(
        actor=actor.user,
        actor_name=actor.name,
        action=action,
        target_type=target_type or "",
        target_id=target_id or "",
        target_repr=(target_repr or "")[:255],
        before=jsonable(before),
        after=jsonable(after),
        source_address=actor.address,
        via=actor.via,
    )
