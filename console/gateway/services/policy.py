"""A device's effective policy as the gateway sends it (console/policies/
services.py computes it and says which devices drifted; we transport).
Acknowledgements arrive in batches: console/jobs/commands.py."""

from __future__ import annotations

from agent.policy import Policy
from console.fleet.models import Device
from console.policies.services import effective_policy_for_device


def effective(device_id: str) -> tuple[str, Policy] | None:
    """(hash, typed policy) of the device's effective policy, or None without one."""
    device = Device.objects.get(pk=device_id)
    eff = effective_policy_for_device(device)
    if not eff.hash:
        return None
    return eff.hash, eff.settings
