"""Roles and what each may do: the one permission module the UI and the API share.

Three roles, held as Django groups: **Admin** (everything), **Operator**
(trigger backups, restores and verifications; no policy, enrollment, storage
or user changes) and **Auditor** (read-only, including the audit log and
enrollment tokens). A superuser is an Admin. A user without a role can sign
in but sees nothing.

UI views use ``@require("capability")`` (console/dashboard/views.py), API
viewsets use ``CapabilityPermission`` (console/api/permissions.py), and
templates ask ``caps.<name>`` (context processor below); all three read
``CAPABILITIES``.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied

ADMIN, OPERATOR, AUDITOR = "Admin", "Operator", "Auditor"
ROLES = (ADMIN, OPERATOR, AUDITOR)
ROLE_DESCRIPTIONS = {
    ADMIN: "Everything: policies, groups, enrollment, storage, users, and all operations",
    OPERATOR: "Sees the fleet; backs up, restores and verifies devices",
    AUDITOR: "Read-only, including the audit log and enrollment tokens",
}

CAPABILITIES: dict[str, frozenset[str]] = {
    "view": frozenset({ADMIN, OPERATOR, AUDITOR}),
    "device.backup": frozenset({ADMIN, OPERATOR}),
    "device.restore": frozenset({ADMIN, OPERATOR}),
    # browse, search and download backed-up files on the console (console/restore)
    "device.download": frozenset({ADMIN, OPERATOR}),
    "device.verify": frozenset({ADMIN, OPERATOR}),
    "device.revoke": frozenset({ADMIN}),
    "device.edit": frozenset({ADMIN}),
    "group.manage": frozenset({ADMIN}),
    "policy.manage": frozenset({ADMIN}),
    "token.view": frozenset({ADMIN, AUDITOR}),
    "token.manage": frozenset({ADMIN}),
    "storage.view": frozenset({ADMIN, AUDITOR}),
    "storage.manage": frozenset({ADMIN}),
    "audit.view": frozenset({ADMIN, AUDITOR}),
    "report.view": frozenset({ADMIN, AUDITOR}),  # read and export compliance reports
    "report.manage": frozenset({ADMIN}),  # report schedules (console/reports/scheduling.py)
    "user.manage": frozenset({ADMIN}),
    "alert.acknowledge": frozenset({ADMIN, OPERATOR}),
    "alert.manage": frozenset({ADMIN}),
    "hold.view": frozenset({ADMIN, AUDITOR}),  # list and export legal holds
    "hold.manage": frozenset({ADMIN}),  # place and release legal holds (console/holds)
}

# Actions on many devices at once (device list, POST /api/v1/devices/bulk/).
BULK_ACTIONS = {"backup": "device.backup", "verify": "device.verify", "add_to_group": "device.edit"}


def ensure_roles() -> None:
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def roles_of(user) -> frozenset[str]:
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, "_cairn_roles", None)
    if cached is None:
        if user.is_superuser:
            cached = frozenset({ADMIN})
        else:
            cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        user._cairn_roles = cached
    return cached


def role_of(user) -> str | None:
    """The strongest role a user holds (for display)."""
    held = roles_of(user)
    return next((r for r in ROLES if r in held), None)


def can(user, capability: str) -> bool:
    if capability not in CAPABILITIES:
        raise KeyError(f"unknown capability {capability!r}")
    return bool(roles_of(user) & CAPABILITIES[capability])


def check(user, capability: str) -> None:
    if not can(user, capability):
        raise PermissionDenied(f"Your role does not allow {capability}.")


def set_role(user, role: str | None) -> None:
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    ensure_roles()
    user.groups.remove(*Group.objects.filter(name__in=ROLES))
    if role:
        user.groups.add(Group.objects.get(name=role))
    user.__dict__.pop("_cairn_roles", None)


def require(capability: str):
    """View decorator: login required, then the capability (403 otherwise)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            check(request.user, capability)
            return view(request, *args, **kwargs)

        return login_required(wrapper)

    return decorator


class _Caps:
    def __init__(self, user):
        self._user = user

    def __getattr__(self, name: str) -> bool:
        return can(self._user, name.replace("_", ".", 1))


def context(request) -> dict:
    """Template context processor: ``caps.policy_manage``, ``role``."""
    user = getattr(request, "user", None)
    return {"caps": _Caps(user), "role": role_of(user)}
