"""Legal holds: place, release, and what they cover (console/holds/models.py).

Only an Admin places or releases a hold (``hold.manage``); Admin and Auditor
list and export them (``hold.view``). Placing and releasing are each audited
(``hold.place`` / ``hold.release``). Retention (console/storage/maintenance.py)
asks ``held_snapshots`` / ``device_held`` before forgetting anything, and
offboarding (console/holds/offboarding.py) asks ``device_held`` before
deleting a revoked device's repository.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from console.audit.services import Actor, record
from console.core.spreadsheet import safe_row
from console.fleet.models import Device
from console.holds.models import LegalHold, Scope

MAX_TEXT = 2000
MAX_CASE = 200
SNAPSHOT_ID = re.compile(r"^[0-9a-f]{8,128}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class HoldInput:
    scope: str
    case_name: str
    reason: str
    device: Device | None = None
    owner: str = ""
    snapshot_id: str = ""


def _text(value: str, field: str, limit: int, errors: dict) -> str:
    # control characters shown as U+FFFD: visible in the CSV, never dropped to ""
    value = _CONTROL.sub("\ufffd", (value or "").strip())
    if not value:
        errors[field] = ["This field is required."]
    elif len(value) > limit:
        errors[field] = [f"At most {limit} characters."]
    return value


def _validate(data: HoldInput) -> dict:
    errors: dict[str, list[str]] = {}
    fields = {
        "case_name": _text(data.case_name, "case_name", MAX_CASE, errors),
        "reason": _text(data.reason, "reason", MAX_TEXT, errors),
        "device": None,
        "owner": "",
        "snapshot_id": "",
    }
    if data.scope not in Scope.values:
        errors["scope"] = [f"One of {', '.join(Scope.values)}."]
    elif data.scope == Scope.USER:
        if not (data.owner or "").strip():
            # a rule across fields (the owner is optional for other scopes)
            errors["owner"] = ["A user hold names the owner."]
        else:
            fields["owner"] = _text(data.owner, "owner", 255, errors)
    else:
        if data.device is None:
            errors["device"] = ["A device is required for this scope."]
        fields["device"] = data.device
        if data.scope == Scope.SNAPSHOT:
            sid = (data.snapshot_id or "").strip().lower()
            if not SNAPSHOT_ID.match(sid):
                errors["snapshot_id"] = ["A snapshot id (hexadecimal)."]
            elif (
                data.device is not None
                and not data.device.snapshots.filter(snapshot_id=sid).exists()
            ):
                errors["snapshot_id"] = ["The device has no snapshot with this id."]
            fields["snapshot_id"] = sid
    if errors:
        raise ValidationError(errors)
    return fields


def _facts(hold: LegalHold) -> dict:
    return {
        "scope": hold.scope,
        "device": str(hold.device_id) if hold.device_id else None,
        "owner": hold.owner,
        "snapshot_id": hold.snapshot_id,
        "case_name": hold.case_name,
        "reason": hold.reason,
    }


@transaction.atomic
def place(actor: Actor, data: HoldInput) -> LegalHold:
    """A new active hold (audited as ``hold.place``)."""
    fields = _validate(data)
    hold = LegalHold.objects.create(scope=data.scope, created_by=actor.user, **fields)
    record(actor, "hold.place", hold, after=_facts(hold))
    return hold


@transaction.atomic
def release(actor: Actor, hold: LegalHold, reason: str) -> LegalHold:
    """End a hold (its own audited act, ``hold.release``); the row stays."""
    errors: dict = {}
    reason = _text(reason, "reason", MAX_TEXT, errors)
    if errors:
        raise ValidationError(errors)
    hold = LegalHold.objects.select_for_update().get(pk=hold.pk)
    if not hold.active:
        raise ValidationError({"hold": ["This hold was already released."]})
    hold.released_at = timezone.now()
    hold.released_by = actor.user
    hold.release_reason = reason
    hold.save(update_fields=["released_at", "released_by", "release_reason"])
    record(actor, "hold.release", hold, before=_facts(hold), after={"release_reason": reason})
    return hold


def active():
    """The holds in force."""
    return LegalHold.objects.filter(released_at__isnull=True)


def _covering(device: Device):
    """Active holds that cover the device or one of its snapshots."""
    q = Q(device=device)
    if device.owner:
        q |= Q(scope=Scope.USER, owner=device.owner)
    return active().filter(q)


def device_held(device: Device) -> bool:
    """Is the whole device held (a device hold, or a hold on its user)?"""
    return _covering(device).exclude(scope=Scope.SNAPSHOT).exists()


def held_snapshots(device: Device) -> set[str] | None:
    """The device's snapshot ids retention must keep: ``None`` means every
    snapshot (the device or its user is held)."""
    holds = list(_covering(device).values_list("scope", "snapshot_id"))
    if any(scope != Scope.SNAPSHOT for scope, _ in holds):
        return None
    return {sid for _, sid in holds}


EXPORT_HEADER = [
    "id",
    "state",
    "scope",
    "device_id",
    "hostname",
    "owner",
    "snapshot_id",
    "case_name",
    "reason",
    "placed_at",
    "placed_by",
    "released_at",
    "released_by",
    "release_reason",
]


def export_csv(actor: Actor, holds) -> str:
    """Holds as CSV (audited as ``hold.export``); every text cell through
    safe_row (host names and owners come from PCs; reasons from people)."""
    holds = list(holds.select_related("device", "created_by", "released_by"))
    record(
        actor,
        "hold.export",
        target_type="legalhold",
        target_id="",
        target_repr=f"{len(holds)} hold(s)",
        after={"holds": [h.pk for h in holds]},
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_HEADER)
    for h in holds:
        writer.writerow(
            safe_row(
                [
                    h.pk,
                    "active" if h.active else "released",
                    h.scope,
                    str(h.device_id or ""),
                    h.device.hostname if h.device_id else "",
                    h.owner or (h.device.owner if h.device_id else ""),
                    h.snapshot_id,
                    h.case_name,
                    h.reason,
                    h.created_at.isoformat(),
                    h.created_by.get_username() if h.created_by else "",
                    h.released_at.isoformat() if h.released_at else "",
                    h.released_by.get_username() if h.released_by else "",
                    h.release_reason,
                ]
            )
        )
    return out.getvalue()
