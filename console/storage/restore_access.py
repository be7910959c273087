"""Read access of one device to another device's repository, for a restore
onto another device ("replace a device", issue 11).

The target agent must decrypt the SOURCE repository without ever holding the
organisation key, and without the source device's own key (gone with the
lost PC). The console opens the source repository with the organisation key
and wraps its data keys under a fresh random **one-time key**, written as one
more key file (``keys/<id>``) of the source repository; the one-time key
travels to the target agent with the restore command (over its mTLS stream)
and opens that repository only. Closing the access deletes the key file, so
the one-time key opens nothing any more (on a versioned or Object Lock
bucket the old version stays readable to the console's credentials only; no
agent can read versions). Storage reads go through the gateway's GET grants
for the source prefix (the gateway checks an open access before signing).

Opening and closing are audited (``device.restore_access.open`` / ``.close``).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from django.utils import timezone

from agent.engine.repository import Repository
from console.audit.services import SYSTEM, Actor, record
from console.core import keys
from console.fleet.models import Device
from console.holds.models import Offboarding
from console.storage import targets
from console.storage.models import RestoreAccess

#: how long the target may read the source repository (grants and key)
ACCESS_FOR = dt.timedelta(hours=24)


class AccessRefused(Exception):
    """The restore access cannot be given (said in words)."""


@dataclass(frozen=True)
class Access:
    id: int  # the RestoreAccess row (named in the target's grant requests)
    source: str  # device id
    target: str  # device id
    repository_url: str  # where the source repository lives
    key_file: str  # the key file's id under keys/ (to close the access)
    key: bytes  # the one-time key (32 bytes): for the target agent only

    def __repr__(self) -> str:  # never in a log
        return f"<Access {self.source} -> {self.target} key_file={self.key_file}>"


def check(source: Device, target: Device) -> None:
    if source.pk == target.pk:
        raise AccessRefused("the target is the source device: restore in place instead")
    if target.revoked:
        raise AccessRefused(f"the target {target.hostname} is revoked")
    if Offboarding.objects.filter(device=source).exists():
        raise AccessRefused(f"the data of {source.hostname} was deleted at offboarding")


def open_access(actor: Actor, source: Device, target: Device) -> Access:
    """Wrap the source repository's keys under a fresh one-time key for ``target``."""
    check(source, target)
    t = targets.target()
    store = targets.admin_store(t, str(source.pk))
    one_time = os.urandom(32)
    try:
        repo = Repository.open(store, key=keys.org_key(), load_index=False)
        key_file = repo.add_key(org_key=one_time)
    finally:
        store.close()
    row = RestoreAccess.objects.create(
        source=source, target=target, key_file=key_file, expires_at=timezone.now() + ACCESS_FOR
    )
    record(
        actor,
        "device.restore_access.open",
        source,
        after={
            "access": row.pk,
            "target": str(target.pk),
            "target_hostname": target.hostname,
            "key_file": key_file,
            "expires_at": row.expires_at.isoformat(),
        },
    )
    return Access(
        row.pk,
        str(source.pk),
        str(target.pk),
        targets.repository_url(t, str(source.pk)),
        key_file,
        one_time,
    )


def close_access(actor: Actor, access_id: int) -> None:
    """Delete the one-time key file and end the grants: the key handed out
    opens nothing any more."""
    row = RestoreAccess.objects.select_related("source").get(pk=access_id)
    store = targets.admin_store(targets.target(), str(row.source_id))
    try:
        store.delete(f"keys/{row.key_file}")
    finally:
        store.close()
    if row.closed_at is None:
        row.closed_at = timezone.now()
        row.save(update_fields=["closed_at"])
    record(
        actor,
        "device.restore_access.close",
        row.source,
        after={"access": row.pk, "key_file": row.key_file},
    )


def close_expired(now=None) -> int:
    """Close the accesses whose window passed without a result closing them
    (the target never ran the restore): their key files are deleted, so the
    one-time keys open nothing. Run daily with maintenance
    (``storage.maintain_all``); the grants already stop at ``expires_at``."""
    now = now or timezone.now()
    ids = list(
        RestoreAccess.objects.filter(closed_at__isnull=True, expires_at__lte=now).values_list(
            "pk", flat=True
        )
    )
    for access_id in ids:
        close_access(SYSTEM, access_id)
    return len(ids)
