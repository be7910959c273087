"""Offboarding: a revoked device's repository is kept for the organisation's
``CAIRN_REVOKED_RETENTION_DAYS`` (default 90) after revocation, then deleted
by maintenance unless a legal hold covers the device or its user
(console/holds/services.py). Until then maintenance leaves a revoked device
alone (console/storage/maintenance.py ``devices_due``), so its data is intact
for restore onto another device or download.

The deletion is carried out by the console with its own full-rights storage
credentials (``targets.admin_store``; agents can never delete) and recorded
in an ``Offboarding`` row (who, when, the device's name and user, the bytes
and objects deleted, the snapshot ids) and in the audit log
(``device.offboard``). The device row stays, revoked, so history, job runs and
the audit trail still name it. An object that cannot be deleted yet (an S3
Object Lock retention still running) fails the pass for that device: nothing
is recorded as done, and the next daily pass tries again.

On a versioned bucket a DELETE leaves a noncurrent version; the bucket's
lifecycle rule (console/storage/buckets.py) expires those.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from console.audit.services import SYSTEM, Actor, record
from console.fleet.models import Device
from console.holds import services
from console.holds.models import Offboarding
from console.jobs.models import Snapshot
from console.storage import targets, verification
from console.storage.models import ObservedSnapshot

log = logging.getLogger(__name__)


class NotDue(Exception):
    """The device cannot be offboarded (not revoked, held, already done)."""


def retention_days() -> int:
    return max(0, int(getattr(settings, "CAIRN_REVOKED_RETENTION_DAYS", 90)))


def delete_after(device: Device) -> dt.datetime | None:
    """When the revoked device's data becomes due for deletion (None: not revoked)."""
    if not device.revoked or device.revoked_at is None:
        return None
    return device.revoked_at + dt.timedelta(days=retention_days())


def due(now: dt.datetime | None = None) -> list[Device]:
    """Revoked devices past the retention, not yet offboarded and not held."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=retention_days())
    candidates = Device.objects.filter(
        revoked=True, revoked_at__lte=cutoff, offboarding__isnull=True
    ).order_by("revoked_at")
    return [d for d in candidates if not services.device_held(d)]


@dataclass
class Result:
    offboarded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def offboard(device: Device, actor: Actor = SYSTEM) -> Offboarding:
    """Delete the revoked device's repository and record it."""
    device = Device.objects.get(pk=device.pk)
    if not device.revoked:
        raise NotDue("the device is not revoked")
    if Offboarding.objects.filter(device=device).exists():
        raise NotDue("the device was already offboarded")
    if services.device_held(device):
        raise NotDue("a legal hold covers the device")
    store = targets.admin_store(targets.target(), str(device.pk))
    try:
        size, count = verification.repository_bytes(store)
        failures = []
        # everything under the device's prefix; snapshots first so a pass cut
        # short never leaves a snapshot pointing at deleted packs
        keys = sorted(store.list(""), key=lambda k: (not k.startswith("snapshots/"), k))
        for key in keys:
            try:
                store.delete(key)
            except Exception as exc:  # e.g. Object Lock: retried by the next pass
                failures.append(f"{key}: {exc}")
        if failures:
            raise RuntimeError(f"{len(failures)} object(s) not deleted, first {failures[0]}")
    finally:
        store.close()
    snaps = sorted(Snapshot.objects.filter(device=device).values_list("snapshot_id", flat=True))
    with transaction.atomic():
        # a hold placed while the objects were being deleted cannot bring them
        # back; it is at least named in the record
        done = Offboarding.objects.create(
            device=device,
            hostname=device.hostname,
            owner=device.owner,
            revoked_at=device.revoked_at,
            deleted_by=actor.name,
            deleted_bytes=size,
            deleted_objects=count,
            snapshots=snaps,
        )
        Snapshot.objects.filter(device=device).delete()
        ObservedSnapshot.objects.filter(device=device).delete()
        Device.objects.filter(pk=device.pk).update(storage_bytes=0)
        record(
            actor,
            "device.offboard",
            device,
            after={
                "deleted_bytes": size,
                "deleted_objects": count,
                "snapshots": snaps,
                "retention_days": retention_days(),
            },
        )
    return done


def offboard_due(now: dt.datetime | None = None) -> Result:
    """The maintenance pass: every due device, one failure not stopping the rest."""
    result = Result()
    for device in due(now):
        try:
            offboard(device)
            result.offboarded.append(str(device.pk))
        except Exception as exc:
            log.warning("offboarding of %s failed: %s", device.pk, exc)
            result.failed[str(device.pk)] = str(exc)[:500]
    return result
