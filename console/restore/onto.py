"""Restore onto another device ("replace a device", issue 11): the request.

``request_restore_onto`` checks the source snapshot and the target, opens a
RestoreAccess (console/storage/restore_access.py: a one-time key wrapped into
the SOURCE repository, read grants of the source prefix for the target) and
queues a restore command to the TARGET naming the source device, the
snapshot, the paths, the access and the mapping context (the source's OS and
user profile, each path classified by agent/engine/remap.py ``plan``; the
target maps them onto its own profile with ``remap.destination``).

The one-time key never rests in clear: the Command row holds it sealed
(AES-256-GCM under a key derived from the organisation key, bound to the
access and the target), it is left out of the audit event, and
:func:`wire_args` opens it only when the gateway writes the command to the
target's mTLS stream. Closing: :func:`close_for_command` when the target's
job finishes (the gateway calls it with the result), else the access expires
after ``restore_access.ACCESS_FOR``.
"""

from __future__ import annotations

import re

import blake3
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agent.engine import crypto, remap
from console.audit.services import SYSTEM, Actor, record
from console.core import keys
from console.fleet.models import Device
from console.jobs import dispatch
from console.jobs.models import Command, CommandKind, Snapshot
from console.storage import restore_access
from console.storage.models import RestoreAccess

MAX_PATHS = 1000
MAX_PATH_CHARS = 4096
_SEAL_CONTEXT = "cairn console 2026 restore one-time key seal v1"
#: what the gateway opens into the command it writes to the stream
SEALED = "key_sealed"
_PROFILE = re.compile(r"^(/[A-Za-z]/Users/[^/]+|/Users/[^/]+|/home/[^/]+)(?:/|$)")


def _cipher() -> crypto.Cipher:
    return crypto.Cipher(blake3.blake3(keys.org_key(), derive_key_context=_SEAL_CONTEXT).digest())


def _aad(access_id: int, target_id: str) -> bytes:
    return f"restore-access:{access_id}:{target_id}".encode()


def takeover_aad(target_id: str) -> bytes:
    return f"takeover:{target_id}".encode()


def seal(key: bytes, aad: bytes) -> bytes:
    """A key for a device, as it rests in a Command row (see the module doc)."""
    return _cipher().seal(key, aad)


def _clean_paths(paths) -> list[str]:
    out = []
    for p in paths or []:
        p = (p or "").strip()
        if not p:
            continue
        if len(p) > MAX_PATH_CHARS or "\x00" in p or not p.startswith("/"):
            raise ValidationError({"paths": [f"Not an absolute repository path: {p[:80]!r}"]})
        if any(part in (".", "..") for part in p.split("/")):
            raise ValidationError({"paths": [f"'..' or '.' in {p[:80]!r}"]})
        out.append(p.rstrip("/") or "/")
    if len(out) > MAX_PATHS:
        raise ValidationError({"paths": [f"At most {MAX_PATHS} paths."]})
    return out


def source_profile(source: Device, paths: list[str], source_home: str = "") -> remap.Profile:
    """The source user's profile: given, else the profile the paths lie under
    in the OS's default layout (``/C/Users/ana``, ``/Users/ana``, ``/home/ana``)."""
    home = (source_home or "").strip().rstrip("/")
    if not home:
        homes = {m.group(1) for m in map(_PROFILE.match, paths) if m}
        if len(homes) != 1:
            raise ValidationError(
                {"source_home": ["Name the source user's profile folder (e.g. /C/Users/ana)."]}
            )
        home = homes.pop()
    try:
        return remap.Profile(source.os, home)
    except remap.RemapError as exc:
        raise ValidationError({"source_home": [str(exc)]}) from None


@transaction.atomic
def request_restore_onto(
    actor: Actor,
    source: Device,
    target: Device,
    snapshot_id: str,
    paths: list[str] | None = None,
    *,
    source_home: str = "",
    folder: str = "",
    overwrite: bool = False,
) -> Command:
    """A restore of ``source``'s snapshot onto ``target`` (which may be
    offline: the command waits). Audited; the key is not in the event."""
    snapshot_id = (snapshot_id or "").strip()
    snap = Snapshot.objects.filter(device=source, snapshot_id=snapshot_id).first()
    if snap is None:
        raise ValidationError({"snapshot_id": ["The source device has no such snapshot."]})
    paths = _clean_paths(paths) or list(snap.paths or [])
    if not paths:
        raise ValidationError({"paths": ["Choose the folders to restore."]})
    try:
        restore_access.check(source, target)
    except restore_access.AccessRefused as exc:
        raise ValidationError({"target_device": [str(exc)]}) from None
    profile = source_profile(source, paths, source_home)
    entries = remap.plan(paths, profile)
    access = restore_access.open_access(actor, source, target)
    payload = {
        "snapshot_id": snapshot_id,
        "paths": paths,
        "target": (folder or "").strip(),
        "overwrite": bool(overwrite),
        "source_device": access.source,
        "source_hostname": source.hostname,
        "restore_access": access.id,
        "repository_url": access.repository_url,
        "mapping": {
            "source_os": profile.os,
            "source_home": profile.home,
            "entries": [[e.source, e.token, e.rest] for e in entries],
        },
    }
    now = timezone.now()
    command = Command.objects.create(
        device=target,
        kind=CommandKind.RESTORE,
        payload={
            **payload,
            SEALED: crypto.b64(seal(access.key, _aad(access.id, access.target))),
        },
        created_by=actor.user,
        created_at=now,
        expires_at=access_expiry(access.id),
    )
    record(
        actor,
        "device.restore",
        target,
        after={"command": str(command.pk), "kind": "restore", **payload},
    )
    dispatch.enqueue_delivery(command)
    return command


def access_expiry(access_id: int):
    return RestoreAccess.objects.values_list("expires_at", flat=True).get(pk=access_id)


def wire_args(payload: dict, target_id: str) -> dict:
    """The arguments written to the target's stream: the sealed key opened
    into ``key`` (base64). Only the gateway calls this, at send time."""
    if SEALED not in payload:
        return payload
    args = {k: v for k, v in payload.items() if k != SEALED}
    if "restore_access" in payload:
        aad = _aad(int(payload["restore_access"]), str(target_id))
    else:  # a takeover (console/restore/takeover.py)
        aad = takeover_aad(str(target_id))
    key = _cipher().open(crypto.unb64(payload[SEALED]), aad, what="device key")
    args["key"] = crypto.b64(key)
    return args


def close_for_command(command: Command, actor: Actor = SYSTEM) -> bool:
    """Close the access a finished restore-onto command used (idempotent)."""
    access_id = (command.payload or {}).get("restore_access")
    if not access_id:
        return False
    if not RestoreAccess.objects.filter(pk=access_id, closed_at__isnull=True).exists():
        return False
    restore_access.close_access(actor, int(access_id))
    return True
