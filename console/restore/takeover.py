"""A replacement device takes over an old one ("replace a device", issue 11).

The new device adopts the old one's history, so its next backup is
incremental against the old data (the engine deduplicates against every
chunk already in the repository): the old repository's objects are copied
server-side into the new device's prefix (S3 CopyObject: the bytes stay in
the object store; the new device's empty repository from enrollment is
replaced), a fresh repository key for the new device is wrapped into that
copy by the console with the organisation key, and a ``takeover`` command
carries the key to the new agent (sealed at rest like the restore-onto key,
console/restore/onto.py; opened only into the mTLS stream; never audited).
The old device is revoked; its groups (and so its policy) are added to the
new device's once that has acknowledged the command (its new policy's first
backup must find the new key in place). The old prefix stays until
offboarding deletes it (CAIRN_REVOKED_RETENTION_DAYS), unless held.

Why a copy rather than pointing the new device at the old prefix: grants are
confined to a device's own prefix (console/storage/grants.py), and this
keeps that rule whole. Cost: the repository's size again in storage until
the old prefix is offboarded.

Refused: the same device, a revoked new device, an offboarded old one, and a
new device that already has backups of its own (they would be lost).
"""

from __future__ import annotations

import json
import os
import uuid

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agent.engine import crypto
from agent.engine.repository import Repository
from console.audit.services import SYSTEM, Actor, record
from console.core import keys
from console.fleet import services as fleet
from console.fleet.models import Device, DeviceGroup
from console.holds.models import Offboarding
from console.jobs import dispatch
from console.jobs.models import Command, CommandKind, Snapshot
from console.restore import onto
from console.storage import targets


def check(old: Device, new: Device) -> None:
    if old.pk == new.pk:
        raise ValidationError({"replacement": ["A device cannot take over itself."]})
    if new.revoked:
        raise ValidationError({"replacement": [f"{new.hostname} is revoked."]})
    if Offboarding.objects.filter(device=old).exists():
        raise ValidationError(
            {"replacement": [f"The data of {old.hostname} was deleted at offboarding."]}
        )
    if Snapshot.objects.filter(device=new).exists():
        raise ValidationError(
            {"replacement": [f"{new.hostname} already has backups of its own: they would be lost."]}
        )


def _copy_repository(t, old_id: str, new_id: str) -> int:
    """The old repository's objects into the new prefix (the new one's
    bootstrap objects removed first). Returns the number of objects."""
    old = targets.admin_store(t, old_id)
    new = targets.admin_store(t, new_id)
    root = targets.admin_store(t, "") if t.kind == "s3" else None
    try:
        for key in list(new.list("")):
            new.delete(key)
        n = 0
        for key in old.list(""):
            if root is not None:  # server-side: the bytes never leave the store
                root.copy(f"{old_id}/{key}", f"{new_id}/{key}")
            else:
                new.put(key, old.get(key))
            n += 1
        return n
    finally:
        for s in (old, new, root):
            if s is not None:
                s.close()


def _drop_other_device_keys(store, org_key: bytes, keep: str) -> int:
    """In the copy, remove the key files of other keys (the old device's own
    key, one-time restore keys): only the organisation key, passphrase files
    (a recovery passphrase) and the new device's key open it."""
    mine = crypto.org_key_id(org_key)
    n = 0
    for name in list(store.list("keys/")):
        if name == f"keys/{keep}":
            continue
        try:
            doc = json.loads(store.get(name))
        except ValueError:
            continue
        if doc.get("kind") == "org-key" and doc.get("org_key_id") != mine:
            store.delete(name)
            n += 1
    return n


def take_over(actor: Actor, old: Device, new: Device) -> Command:
    check(old, new)
    t = targets.target()
    objects = _copy_repository(t, str(old.pk), str(new.pk))
    repo_key = os.urandom(32)
    store = targets.admin_store(t, str(new.pk))
    try:
        repo = Repository.open(store, key=keys.org_key(), load_index=False)
        key_file = repo.add_key(org_key=repo_key)
        dropped = _drop_other_device_keys(store, keys.org_key(), keep=key_file)
    finally:
        store.close()
    with transaction.atomic():
        payload = {
            "old_device": str(old.pk),
            "key_file": key_file,
            "groups": sorted(old.groups.values_list("pk", flat=True)),
        }
        now = timezone.now()
        command = Command.objects.create(
            device=new,
            kind=CommandKind.TAKEOVER,
            payload={
                **payload,
                onto.SEALED: crypto.b64(onto.seal(repo_key, onto.takeover_aad(str(new.pk)))),
            },
            created_by=actor.user,
            created_at=now,
            expires_at=now + onto.restore_access.ACCESS_FOR,
        )
        dispatch.enqueue_delivery(command)
        # The groups (so the policy) are given once the new device has
        # acknowledged the command (finish_acknowledged): a backup the new
        # policy starts must find the new key in place.
        groups = list(old.groups.all())
        # the history is the new device's now: its snapshots are listed under it
        moved = Snapshot.objects.filter(device=old).update(device=new)
        fleet.revoke_device(actor, old, reason=f"replaced by {new.hostname}")
        record(
            actor,
            "device.takeover",
            new,
            before={"device": str(old.pk), "hostname": old.hostname},
            after={
                "command": str(command.pk),
                **payload,
                "objects_copied": objects,
                "other_keys_removed": dropped,
                "snapshots": moved,
                "group_names": sorted(g.name for g in groups),
            },
        )
    return command


def finish_acknowledged(acks) -> int:
    """The gateway's acknowledgements ((device id, command id, accepted,
    reason), batched): a takeover the new device accepted gets the old
    device's groups added to its own, once (its policy follows). Returns how
    many were finished."""
    ids = [c for d, c, ok, _ in acks if ok]
    if not ids:
        return 0
    done = 0
    for cmd in Command.objects.filter(pk__in=_uuids(ids), kind=CommandKind.TAKEOVER).select_related(
        "device", "created_by"
    ):
        if not any(str(cmd.device_id) == str(d) and str(cmd.pk) == str(c) for d, c, _, _ in acks):
            continue
        payload = dict(cmd.payload or {})
        if payload.get("groups_given"):
            continue
        with transaction.atomic():
            new = cmd.device
            groups = list(new.groups.all()) + list(
                DeviceGroup.objects.filter(pk__in=payload.get("groups") or [])
            )
            actor = Actor(user=cmd.created_by) if cmd.created_by else SYSTEM
            fleet.set_device_groups(actor, new, list({g.pk: g for g in groups}.values()))
            payload["groups_given"] = True
            Command.objects.filter(pk=cmd.pk).update(payload=payload)
        done += 1
    return done


def _uuids(values) -> list:
    out = []
    for v in values:
        try:
            out.append(uuid.UUID(str(v)))
        except ValueError:
            continue
    return out
