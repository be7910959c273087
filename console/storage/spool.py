"""Promotion of offline spool uploads into a device repository.

Why: an agent that reaches object storage but no gateway cannot get a
per-object grant, so while online it takes a *spool lease*
(console/storage/grants.py ``lease_spool``): write-once PUT URLs,
valid for days, for random slots ``spool/<id>/object`` and
``spool/<id>/target`` under its own prefix. It writes the object's bytes, then
a small JSON document naming where they belong: ``{"v": 1, "key": "<repository
key>", "size": <bytes>}``. The agent never holds a URL for the final key, so
the console decides what lands in the repository:

* a target must name a data pack, an index object or a snapshot of this
  device's own repository, in their exact layouts (no ``..``, no other
  device, no ``config``, ``keys/`` or ``prune/``), and the object's size must
  be the one announced; anything else is refused, deleted and audited;
* an existing object is **never** overwritten (a duplicate is dropped), so the
  write-once guarantee of grants holds for spooled uploads too;
* data is promoted before index objects, index objects before snapshots: a
  snapshot never appears before the data it refers to;
* promotion is a server-side copy, then the deletion of the slot (object,
  then target): the bytes never leave the object store, and a run that stops
  at any point leaves a state the next run finishes (a copy already made is
  then a duplicate of the same size);
* an object whose target never came (the agent died mid-upload) is deleted
  once its slot's URLs have expired for a day; a revoked device's spool is
  deleted without promoting anything.

Remaining race, accepted: "target exists?" then copy is not atomic. The only
other writers of these keys are the agent itself (through write-once grants)
and the console's repack; all name objects by the hash of their sealed bytes,
so a racing writer writes the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from django.utils import timezone

from agent.engine.store import ObjectNotFound
from console.audit.services import SYSTEM, record
from console.fleet.models import Device
from console.storage import conf, targets
from console.storage.grants import SPOOL

log = logging.getLogger(__name__)

#: a target document is tiny; anything larger is refused unread
MAX_TARGET_BYTES = 4096
#: after its URLs expired, an object without a target waits this long more
ABANDON_AFTER_EXPIRY = dt.timedelta(days=1)
#: where a promoted object may go, in promotion order (agent/engine/pack.py
#: ``pack_key``; Repository.put_sealed for index objects and snapshots)
LAYOUTS = (
    ("data", re.compile(r"data/([0-9a-f]{2})/([0-9a-f]{64})")),
    ("index", re.compile(r"index/[0-9a-f]{64}")),
    ("snapshots", re.compile(r"snapshots/[0-9a-f]{64}")),
)
PARTS = ("object", "target")


class Refused(Exception):
    """A spool slot that must not be promoted (the message is the reason)."""


@dataclass
class PromoteReport:
    promoted: int = 0
    duplicates: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (spool id, reason)
    abandoned: int = 0
    waiting: int = 0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["refused"] = [{"id": i, "reason": r} for i, r in self.refused]
        return out


def _category(key) -> int:
    """The promotion rank of a repository key (its LAYOUTS index)."""
    if isinstance(key, str):
        for rank, (_name, pattern) in enumerate(LAYOUTS):
            m = pattern.fullmatch(key)  # fullmatch: "$" would accept a trailing newline
            if m and (rank != 0 or m.group(1) == m.group(2)[:2]):
                return rank
    raise Refused(f"target key {key!r} is not a data pack, index object or snapshot")


def _read_target(store, key: str) -> tuple[str, int]:
    """The (repository key, size) a target document names."""
    info = store.stat(key)
    if info is None:
        raise ObjectNotFound(key)
    if info.size > MAX_TARGET_BYTES:
        raise Refused(f"target document of {info.size} bytes (at most {MAX_TARGET_BYTES})")
    try:
        doc = json.loads(store.get(key))
    except ValueError:
        raise Refused("target document is not JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != 1:
        raise Refused("target document is not version 1")
    size = doc.get("size")
    if type(size) is not int or size < 0:
        raise Refused("target size is not a byte count")
    _category(doc.get("key"))
    return doc["key"], size


def _delete(store, parts: dict[str, str]) -> None:
    """Delete a slot's keys, the object first: a lone target is never promoted
    (it is cleared when its key is in place, refused otherwise)."""
    for part in (*PARTS, "?"):
        if part in parts:
            store.delete(parts[part])


def _listing(store) -> dict[str, dict[str, str]]:
    """spool id -> {part: its key}, from one listing of ``spool/``; an
    unexpected name is listed under itself, as part "?"."""
    slots: dict[str, dict] = defaultdict(dict)
    for key in store.list(f"{SPOOL}/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] in PARTS and parts[1]:
            slots[parts[1]][parts[2]] = key
        else:
            slots[key]["?"] = key
    return slots


def promote(device_id: str, *, now: dt.datetime | None = None) -> PromoteReport:
    """Promote the device's complete spool slots into its repository; see the
    module docstring for the rules. Safe to run again at any time."""
    report = PromoteReport()
    t = targets.target()
    if t.kind != "s3":
        return report  # agents on the embedded local store write it directly
    now = now or timezone.now()
    device = Device.objects.filter(pk=device_id).first()
    revoked = device is None or device.revoked
    abandon_before = now - dt.timedelta(seconds=conf.spool_lease_seconds()) - ABANDON_AFTER_EXPIRY
    store = targets.admin_store(t, str(device_id))
    try:
        pending: list[tuple[int, str, str, int, dict]] = []  # (rank, id, key, size, parts)
        for spool_id, parts in sorted(_listing(store).items()):
            try:
                if "?" in parts:
                    raise Refused("not a spool slot")
                if revoked:
                    _delete(store, parts)
                    report.abandoned += 1
                elif "target" not in parts:
                    info = store.stat(parts["object"])
                    if info is not None and info.last_modified < abandon_before:
                        _delete(store, parts)
                        report.abandoned += 1
                    elif info is not None:
                        report.waiting += 1
                elif "object" not in parts:
                    # A run stopped between deleting the object and the target
                    # leaves this after a promotion: finish it quietly.
                    key, size = _read_target(store, parts["target"])
                    existing = store.stat(key)
                    if existing is None or existing.size != size:
                        raise Refused("target without object")
                    _delete(store, parts)
                    report.duplicates += 1
                else:
                    key, size = _read_target(store, parts["target"])
                    if store.size(parts["object"]) != size:
                        raise Refused(f"object is not of the announced {size} bytes")
                    pending.append((_category(key), spool_id, key, size, parts))
            except Refused as exc:
                _delete(store, parts)
                report.refused.append((spool_id, str(exc)))
            except ObjectNotFound:
                continue  # another run took this slot meanwhile: the next run sees the rest
        for _rank, spool_id, key, size, parts in sorted(pending, key=lambda p: p[:2]):
            try:
                existing = store.stat(key)
                if existing is None:
                    store.copy(parts["object"], key)
                    report.promoted += 1
                elif existing.size == size:
                    report.duplicates += 1
                else:
                    report.refused.append(
                        (spool_id, f"{key} exists with another size: not overwritten")
                    )
                _delete(store, parts)
            except ObjectNotFound:
                continue
    finally:
        store.close()
        _audit(device, device_id, report)  # also what a failed run refused and deleted
    if report.promoted or report.duplicates or report.abandoned or report.refused:
        log.info("spool of %s: %s", device_id, report.to_dict())
    return report


def _audit(device, device_id: str, report: PromoteReport) -> None:
    if not report.refused:
        return
    for spool_id, reason in report.refused:
        log.warning("spool slot %s of device %s refused: %s", spool_id, device_id, reason)
    record(
        SYSTEM,
        "device.spool_refused",
        device,
        target_type="device",
        target_id=str(device_id),
        after={"refused": report.to_dict()["refused"][:100], "count": len(report.refused)},
    )
