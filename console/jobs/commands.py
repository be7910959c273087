"""What the control plane asks of commands: which to send a device's stream,
which were sent, what the agents acknowledged. The transitions themselves
are the Command model's (console/jobs/models.py: pending → sent →
acknowledged → done | failed | expired, never backwards); this module batches
them for the gateway, which only transports (console/gateway/server.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta

from django.utils import timezone

from console.fleet.models import Device
from console.jobs.models import Command, CommandKind, CommandState

#: rows per IN (...) list
BATCH = 500


def _uuids(command_ids: Iterable) -> list[uuid.UUID]:
    """The ids that are UUIDs (an agent's word: anything else names nothing)."""
    out = []
    for c in command_ids:
        try:
            out.append(c if isinstance(c, uuid.UUID) else uuid.UUID(str(c)))
        except ValueError:
            continue
    return out


def deliverable_for(device_id) -> list[Command]:
    """Commands to (re)send when the device's stream opens, oldest first."""
    return list(Command.objects.filter(device_id=device_id).deliverable().order_by("created_at"))


def pending_for_devices(device_ids, min_age: float = 0.0) -> list[Command]:
    """Pending (never sent) unexpired commands of the devices this gateway
    holds, at least ``min_age`` seconds old (fresh ones arrive by pub/sub)."""
    ids = [str(d) for d in device_ids]
    now = timezone.now()
    cutoff = now - timedelta(seconds=min_age)
    out: list[Command] = []
    for i in range(0, len(ids), BATCH):
        out += list(
            Command.objects.filter(
                device_id__in=ids[i : i + BATCH],
                state=CommandState.PENDING,
                expires_at__gt=now,
                created_at__lte=cutoff,
            ).order_by("created_at")
        )
    return out


def get(command_id) -> Command | None:
    ids = _uuids([command_id])
    return Command.objects.filter(pk=ids[0]).first() if ids else None


def get_many(command_ids) -> list[Command]:
    ids = _uuids(command_ids)
    return list(Command.objects.filter(pk__in=ids)) if ids else []


def mark_sent(command_ids) -> int:
    """pending → sent for many commands in one statement."""
    return Command.objects.filter(pk__in=list(command_ids)).mark_sent()


def acknowledge(device_id, command_id, accepted: bool, reason: str = "") -> None:
    """One agent's answer to a command it was sent; ignored unless the
    command is the answering device's own. Accepting a cancel is its end;
    "expired" means the agent found it past its time."""
    cmd = get(command_id)
    if cmd is None or str(cmd.device_id) != str(device_id):
        return
    if accepted:
        cmd.acknowledge()
        if cmd.kind == CommandKind.CANCEL:
            cmd.finish(ok=True)
    elif reason == "expired":
        cmd.expire("expired before it ran")
    else:
        cmd.finish(ok=False, error=reason or "refused by the agent")


def acknowledge_many(acks, policy_acks: dict[str, set[str]]) -> None:
    """Batched acknowledgements from the streams.

    ``acks``: (device id, command id, accepted, reason); a command is only
    moved when it belongs to the acknowledging device. ``policy_acks``:
    revision hash → devices now running it; the same effect as
    ``record_policy_applied`` for each (applied hash and time, their
    apply-policy commands for that hash done), in a few statements."""
    now = timezone.now()
    by_id = {}
    for device_id, command_id, ok, reason in acks:
        for pk in _uuids([command_id]):
            by_id[pk] = (str(device_id), ok, reason)
    if by_id:
        owners = dict(Command.objects.filter(pk__in=list(by_id)).values_list("pk", "device_id"))
        mine = {c: v for c, v in by_id.items() if str(owners.get(c)) == v[0]}
        accepted = [c for c, (_d, ok, _r) in mine.items() if ok]
        if accepted:
            Command.objects.filter(pk__in=accepted).acknowledge(at=now)
            Command.objects.filter(
                pk__in=accepted, kind=CommandKind.CANCEL, state=CommandState.ACKNOWLEDGED
            ).finish(ok=True, at=now)
        for c, (d, ok, reason) in mine.items():
            if not ok:
                acknowledge(d, c, False, reason)
    for revision, devices in policy_acks.items():
        devices = list(devices)
        for i in range(0, len(devices), BATCH):
            chunk = devices[i : i + BATCH]
            Device.objects.filter(pk__in=chunk).exclude(applied_hash=revision).update(
                applied_hash=revision, applied_at=now
            )
            Command.objects.filter(
                device_id__in=chunk, kind=CommandKind.APPLY_POLICY, payload__hash=revision
            ).finish(ok=True, at=now)
