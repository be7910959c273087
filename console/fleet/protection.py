"""Devices' protection deadlines kept consistent (beat: console/fleet/tasks.py)."""

from __future__ import annotations

from django.db.models import F, Q

from console.fleet.models import AT_RISK_FACTOR, Device


def recompute_protection() -> int:
    """Devices whose deadlines disagree with last_success_at + rpo are fixed
    in one UPDATE (the status columns are derived from these against now)."""
    stale = Device.objects.filter(revoked=False, last_success_at__isnull=False).filter(
        ~Q(protected_until=F("last_success_at") + F("rpo")) | Q(protected_until__isnull=True)
    )
    return stale.update(
        protected_until=F("last_success_at") + F("rpo"),
        at_risk_until=F("last_success_at") + F("rpo") * AT_RISK_FACTOR,
    )
