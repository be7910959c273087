"""Stream lifecycle and batched heartbeat writes."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from console.core.safejson import clean_text
from console.fleet.models import Device
from console.gateway import conf
from console.gateway.models import DeviceConnection
from console.jobs.models import Command
from console.jobs.services import record_policy_applied


def stream_opened(device: Device, host: dict, revision: str) -> bool:
    """A device opened its stream (``device`` as loaded by authenticate).
    Writes only what changed: host facts, the revision it runs. Returns
    whether it has open commands to send. Marking it online is batched
    (``flush``)."""
    changes = {}
    for src, dst, size in (
        ("hostname", "hostname", 255),
        ("os_version", "os_version", 64),
        ("agent_version", "agent_version", 32),
        ("username", "owner", 255),
    ):
        value = clean_text(host.get(src) or "")[:size]  # the agent's word: no NUL
        if value and getattr(device, dst) != value:
            changes[dst] = value
    if changes:
        Device.objects.filter(pk=device.pk).update(**changes)
    if revision and revision != device.applied_hash:
        record_policy_applied(device.pk, revision)
    now = timezone.now()
    return Command.objects.filter(
        device_id=device.pk, state__in=("pending", "sent"), expires_at__gt=now
    ).exists()


def goodbye(device_id: str, gateway_id: str) -> None:
    now = timezone.now()
    DeviceConnection.objects.filter(device_id=device_id, gateway_id=gateway_id[:128]).update(
        online=False, disconnected_at=now, updated_at=now
    )
    Device.objects.filter(pk=device_id).update(last_seen_at=now)


def goodbye_many(device_ids, gateway_id: str) -> None:
    """A gateway stopping: its streams are offline, in one UPDATE per 500."""
    now = timezone.now()
    ids = [str(d) for d in device_ids]
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        DeviceConnection.objects.filter(device_id__in=chunk, gateway_id=gateway_id[:128]).update(
            online=False, disconnected_at=now, updated_at=now
        )
        Device.objects.filter(pk__in=chunk).update(last_seen_at=now)


def flush(opened: dict[str, tuple], seen: dict[str, dict]) -> None:
    """Batched writes: ``opened`` (device id → (gateway id, connected at))
    upserts DeviceConnection rows online in one statement per 1,000;
    ``seen`` (device id → latest heartbeat facts) moves last-seen with one
    UPDATE per 500 devices, and agent-state changes with one UPDATE per
    distinct state."""
    now = timezone.now()
    if opened:
        DeviceConnection.objects.bulk_create(
            [
                DeviceConnection(
                    device_id=d,
                    online=True,
                    gateway_id=gw[:128],
                    connected_at=at,
                    last_heartbeat_at=at,
                    updated_at=now,
                )
                for d, (gw, at) in opened.items()
            ],
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["device"],
            update_fields=[
                "online",
                "gateway_id",
                "connected_at",
                "last_heartbeat_at",
                "updated_at",
            ],
        )
    ids = list(set(seen) | set(opened))
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        Device.objects.filter(pk__in=chunk).update(last_seen_at=now)
        DeviceConnection.objects.filter(device_id__in=chunk).update(
            last_heartbeat_at=now, online=True
        )
    groups: dict[tuple, list[str]] = {}
    for device_id, facts in seen.items():
        if facts.get("changed"):
            key = (
                facts.get("state", "")[:32],
                facts.get("pause_reason", "")[:64],
                facts.get("next_backup_at"),
                facts.get("outbox_size", 0),
            )
            groups.setdefault(key, []).append(device_id)
    for (state, reason, next_at, outbox), devices in groups.items():
        for i in range(0, len(devices), 500):
            DeviceConnection.objects.filter(device_id__in=devices[i : i + 500]).update(
                agent_state=state,
                pause_reason=reason,
                next_backup_at=next_at,
                outbox_size=outbox,
                updated_at=now,
            )


def mark_offline(now=None) -> int:
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=conf.offline_after_seconds())
    return DeviceConnection.objects.filter(online=True, last_heartbeat_at__lt=cutoff).update(
        online=False, disconnected_at=now, updated_at=now
    )
