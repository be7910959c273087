"""Stream lifecycle and batched heartbeat writes."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from console.fleet.models import Device
from console.gateway import conf
from console.gateway.models import DeviceConnection


def hello(device_id: str, host: dict, gateway_id: str) -> None:
    now = timezone.now()
    fields = {"last_seen_at": now}
    for src, dst, size in (
        ("hostname", "hostname", 255),
        ("os_version", "os_version", 64),
        ("agent_version", "agent_version", 32),
        ("username", "owner", 255),
    ):
        if host.get(src):
            fields[dst] = host[src][:size]
    Device.objects.filter(pk=device_id).update(**fields)
    DeviceConnection.objects.update_or_create(
        device_id=device_id,
        defaults=dict(
            online=True,
            gateway_id=gateway_id[:128],
            connected_at=now,
            last_heartbeat_at=now,
            updated_at=now,
        ),
    )


def goodbye(device_id: str, gateway_id: str) -> None:
    now = timezone.now()
    DeviceConnection.objects.filter(device_id=device_id, gateway_id=gateway_id[:128]).update(
        online=False, disconnected_at=now, updated_at=now
    )
    Device.objects.filter(pk=device_id).update(last_seen_at=now)


def flush_heartbeats(seen: dict[str, dict]) -> None:
    """``seen``: device id → latest heartbeat facts since the last flush.
    One UPDATE per 500 devices for last-seen; per-row only where the agent's
    state changed."""
    if not seen:
        return
    now = timezone.now()
    ids = list(seen)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        Device.objects.filter(pk__in=chunk).update(last_seen_at=now)
        DeviceConnection.objects.filter(device_id__in=chunk).update(
            last_heartbeat_at=now, online=True
        )
    for device_id, facts in seen.items():
        if facts.get("changed"):
            DeviceConnection.objects.filter(device_id=device_id).update(
                agent_state=facts.get("state", "")[:32],
                pause_reason=facts.get("pause_reason", "")[:64],
                next_backup_at=facts.get("next_backup_at"),
                outbox_size=facts.get("outbox_size", 0),
                updated_at=now,
            )


def mark_offline(now=None) -> int:
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=conf.offline_after_seconds())
    return DeviceConnection.objects.filter(online=True, last_heartbeat_at__lt=cutoff).update(
        online=False, disconnected_at=now, updated_at=now
    )
