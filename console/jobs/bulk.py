"""One action on many devices at once: the device list's bulk bar and
POST /api/v1/devices/bulk/ both call ``run_bulk_action``.

The actor's role is checked here (BULK_ACTIONS names each action's
capability), so no door can skip it. Devices that are revoked or unknown are
left out, not an error: the answer says how many were acted on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from console.accounts.roles import BULK_ACTIONS, check
from console.audit.services import Actor
from console.fleet import services as fleet
from console.fleet.models import Device, DeviceGroup
from console.jobs import services as jobs
from console.jobs.models import Command

MAX_DEVICES = 500  # one page of the device list at its largest page size
ADD_TO_GROUP = "add_to_group"


@dataclass(frozen=True)
class BulkResult:
    action: str
    devices: list[Device]
    group: DeviceGroup | None = None
    commands: list[Command] = field(default_factory=list)


def device_ids(values) -> list[uuid.UUID]:
    """The valid device ids among ``values`` (at most MAX_DEVICES; others dropped)."""
    out = []
    for value in list(values)[:MAX_DEVICES]:
        try:
            out.append(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
        except ValueError:
            continue
    return out


def run_bulk_action(
    actor: Actor, action: str, ids, group: DeviceGroup | int | str | None = None
) -> BulkResult:
    """Back up, verify (a command each, all or none) or add to ``group`` the
    active devices among ``ids``. PermissionDenied if the actor's role may
    not; ValidationError (by field) for an unknown action or a missing group."""
    capability = BULK_ACTIONS.get(action)
    if capability is None:
        raise ValidationError({"action": ["Choose an action."]})
    check(actor.user, capability)
    devices = list(
        Device.objects.filter(pk__in=device_ids(ids), revoked=False).order_by("hostname")
    )
    if action == ADD_TO_GROUP:
        if not isinstance(group, DeviceGroup):
            group = _group(group)
        if group is None:
            raise ValidationError({"group": ["Choose a group."]})
    if not devices:
        return BulkResult(action, devices, group=group)  # nothing to do, nothing audited
    if action == ADD_TO_GROUP:
        fleet.add_devices_to_group(actor, group, devices)
        return BulkResult(action, devices, group=group)
    return BulkResult(action, devices, commands=jobs.request_for_devices(actor, action, devices))


def _group(value) -> DeviceGroup | None:
    try:
        pk = int(value)
    except (TypeError, ValueError):
        return None
    return DeviceGroup.objects.filter(pk=pk).first() if 0 < pk < 2**63 else None
