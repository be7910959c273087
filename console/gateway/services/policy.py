"""A device's effective policy as the gateway sends it, and the revision the
agent acknowledges (console/policies/services.py computes; we transport)."""

from __future__ import annotations

from agent.policy import Policy
from console.fleet.models import Device
from console.jobs import services as jobs
from console.policies.services import effective_policy_for_device


def effective(device_id: str) -> tuple[str, Policy] | None:
    """(hash, typed policy) of the device's effective policy, or None without one."""
    device = Device.objects.get(pk=device_id)
    eff = effective_policy_for_device(device)
    if not eff.hash:
        return None
    return eff.hash, eff.settings


def acknowledge(device_id: str, revision: str) -> bool:
    """The agent runs ``revision``: rollout acknowledgement."""
    if not revision:
        return False
    return jobs.record_policy_applied(device_id, revision)


def drifted(device_ids) -> list[tuple[str, str]]:
    """(device id, effective hash) of devices whose acknowledged revision
    differs from their target."""
    from django.db.models import F

    ids = [str(d) for d in device_ids]
    out: list[tuple[str, str]] = []
    for i in range(0, len(ids), 500):
        out += [
            (str(pk), digest)
            for pk, digest in Device.objects.filter(pk__in=ids[i : i + 500], revoked=False)
            .exclude(effective_hash="")
            .exclude(applied_hash=F("effective_hash"))
            .values_list("pk", "effective_hash")
        ]
    return out
