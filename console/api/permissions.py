"""API side of console/accounts/roles.py: the same capabilities as the UI."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from console.accounts.roles import can


class CapabilityPermission(BasePermission):
    """Each viewset declares ``capabilities = {action: capability}``. Other
    safe (read) requests need ``capabilities["read"]`` (default "view"); other
    unsafe requests need ``capabilities["*"]`` and are refused if it is not
    declared (fail closed)."""

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        caps = getattr(view, "capabilities", {})
        action = getattr(view, "action", None)
        capability = caps.get(action)
        if capability is None:
            capability = (
                caps.get("read", "view") if request.method in SAFE_METHODS else caps.get("*")
            )
        if capability is None:
            return False
        return can(user, capability)
