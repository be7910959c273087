"""Read side of the audit log, shared by the dashboard and the API (a filter
left blank: any)."""

from __future__ import annotations

from datetime import date, datetime

from django.db.models import QuerySet

from console.audit.models import AuditEvent
from console.core.queries import choice, given


def audit_events(
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    via: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    from_day: date | None = None,
    to_day: date | None = None,
) -> QuerySet[AuditEvent]:
    """Events by a user (case-insensitive), with an action prefix, on a target
    whose description contains ``target`` (or by type and id), through ``via``
    (ignored if not a Via), at or after ``since`` and before ``until``, from
    ``from_day`` to ``to_day`` (both included)."""
    return AuditEvent.objects.filter(
        **given(
            actor_name__iexact=actor,
            action__startswith=action,
            target_repr__icontains=target,
            target_type=target_type,
            target_id=target_id,
            via=choice(via, AuditEvent.Via),
            at__gte=since,
            at__lt=until,
            at__date__gte=from_day,
            at__date__lte=to_day,
        )
    )
