"""Business rules of the fleet: groups, membership, enrollment tokens,
enrollment and revocation. Every change is audited."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from console.audit.services import SYSTEM, Actor, record
from console.fleet.models import OS, Device, DeviceGroup, EnrollmentToken
from console.fleet.signals import device_revoked
from console.policies.services import rollout_devices

TOKEN_PREFIX = "cet_"


class EnrollmentError(Exception):
    """The token is unknown, expired, revoked or used up."""


# --- groups -------------------------------------------------------------------


def _group_state(group: DeviceGroup) -> dict:
    return {"name": group.name, "description": group.description}


@transaction.atomic
def create_group(actor: Actor, name: str, description: str = "") -> DeviceGroup:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["This field is required."]})
    if DeviceGroup.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": [f"A group named {name!r} already exists."]})
    group = DeviceGroup.objects.create(name=name, description=description)
    record(actor, "group.create", group, after=_group_state(group))
    return group


@transaction.atomic
def update_group(actor: Actor, group: DeviceGroup, name: str, description: str = "") -> DeviceGroup:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["This field is required."]})
    if DeviceGroup.objects.filter(name__iexact=name).exclude(pk=group.pk).exists():
        raise ValidationError({"name": [f"A group named {name!r} already exists."]})
    before = _group_state(group)
    group.name, group.description = name, description
    group.save(update_fields=["name", "description"])
    record(actor, "group.update", group, before=before, after=_group_state(group))
    return group


@transaction.atomic
def delete_group(actor: Actor, group: DeviceGroup) -> None:
    device_ids = list(group.devices.values_list("pk", flat=True))
    before = {**_group_state(group), "devices": len(device_ids)}
    record(actor, "group.delete", group, before=before)
    group.delete()
    rollout_devices(device_ids, actor=actor)


@transaction.atomic
def set_device_groups(actor: Actor, device: Device, groups) -> Device:
    before = sorted(device.groups.values_list("name", flat=True))
    device.groups.set(groups)
    after = sorted(g.name for g in groups)
    record(actor, "device.groups", device, before={"groups": before}, after={"groups": after})
    rollout_devices([device.pk], actor=actor)
    return device


@transaction.atomic
def add_devices_to_group(actor: Actor, group: DeviceGroup, devices) -> int:
    devices = list(devices)
    group.devices.add(*devices)
    record(
        actor,
        "group.add_devices",
        group,
        after={"devices": [d.hostname for d in devices][:100], "count": len(devices)},
    )
    rollout_devices([d.pk for d in devices], actor=actor)
    return len(devices)


# --- enrollment tokens --------------------------------------------------------


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


# An enrollment token's lifetime is given in hours, its one unit (the page's
# form, the API and this service); the token row stores only its expiry time.
TOKEN_HOURS_DEFAULT = 24 * 7
TOKEN_HOURS_MAX = 24 * 365


@transaction.atomic
def create_enrollment_token(
    actor: Actor,
    name: str,
    group: DeviceGroup | None = None,
    expires_in_hours: int = TOKEN_HOURS_DEFAULT,
    max_uses: int = 1,
) -> tuple[EnrollmentToken, str]:
    """Create a token; returns it and the plaintext secret, shown once and never stored."""
    errors = {}
    if not (name or "").strip():
        errors["name"] = ["This field is required."]
    if max_uses < 1 or max_uses > 100000:
        errors["max_uses"] = ["Must be between 1 and 100000."]
    if not 1 <= expires_in_hours <= TOKEN_HOURS_MAX:
        errors["expires_in_hours"] = [f"Must be between 1 and {TOKEN_HOURS_MAX} hours (365 days)."]
    if errors:
        raise ValidationError(errors)
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = EnrollmentToken.objects.create(
        name=name.strip(),
        token_hash=hash_token(plaintext),
        prefix=plaintext[:10],
        group=group,
        expires_at=timezone.now() + timedelta(hours=expires_in_hours),
        max_uses=max_uses,
        uses_remaining=max_uses,
        created_by=actor.user,
    )
    record(
        actor,
        "token.create",
        token,
        after={
            "name": token.name,
            "group": group.name if group else None,
            "expires_at": token.expires_at,
            "max_uses": max_uses,
        },
    )
    return token, plaintext


@transaction.atomic
def revoke_enrollment_token(actor: Actor, token: EnrollmentToken) -> EnrollmentToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record(actor, "token.revoke", token, before={"state": "active"}, after={"state": "revoked"})
    return token


def consume_enrollment_token(plaintext: str) -> EnrollmentToken:
    """Check and use up one use of a token (call inside a transaction)."""
    try:
        token = EnrollmentToken.objects.select_for_update().get(token_hash=hash_token(plaintext))
    except EnrollmentToken.DoesNotExist:
        raise EnrollmentError("unknown enrollment token") from None
    state = token.state()
    if state != "active":
        raise EnrollmentError(f"enrollment token is {state}")
    token.uses_remaining -= 1
    token.last_used_at = timezone.now()
    token.save(update_fields=["uses_remaining", "last_used_at"])
    return token


@transaction.atomic
def enroll_device(
    token_plaintext: str,
    *,
    hostname: str,
    os: str,
    os_version: str = "",
    agent_version: str = "",
    owner: str = "",
    cert_fingerprint: str = "",
    cert_expires_at=None,
    device_id=None,
    address: str | None = None,
) -> Device:
    """Seam for the gateway's Enroll call: consume the token, create the device
    in the token's group, compute its effective policy. Raises EnrollmentError."""
    if os not in OS.values:
        raise EnrollmentError(f"unsupported OS {os!r}")
    token = consume_enrollment_token(token_plaintext)
    now = timezone.now()
    device = Device(
        hostname=hostname[:255],
        os=os,
        os_version=os_version[:64],
        agent_version=agent_version[:32],
        owner=owner[:255],
        cert_fingerprint=cert_fingerprint,
        cert_expires_at=cert_expires_at,
        enrolled_at=now,
        last_seen_at=now,
        enrollment_token=token,
    )
    if device_id is not None:
        device.id = device_id
    device.save()
    if token.group_id:
        device.groups.add(token.group_id)
    record(
        Actor(address=address, via="system"),
        "device.enroll",
        device,
        after={"hostname": device.hostname, "os": os, "token": token.prefix},
    )
    rollout_devices([device.pk], actor=SYSTEM, send_commands=False)
    device.refresh_from_db()
    return device


@transaction.atomic
def revoke_device(actor: Actor, device: Device, reason: str = "") -> Device:
    """Revoke a device: the gateway refuses it at its next call (control plane)
    and its open commands expire."""
    if device.revoked:
        return device
    device.revoked = True
    device.revoked_at = timezone.now()
    device.save(update_fields=["revoked", "revoked_at"])
    device.commands.expire("device revoked", at=device.revoked_at)
    record(
        actor,
        "device.revoke",
        device,
        before={"revoked": False},
        after={"revoked": True, "reason": reason},
    )
    _notify_revoked(device)
    return device


def _notify_revoked(device: Device) -> None:
    """Tell the control plane (console.fleet.signals.device_revoked) after commit."""
    device_id = device.pk
    transaction.on_commit(lambda: device_revoked.send(sender=Device, device_id=device_id))
