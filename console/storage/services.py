"""Storage targets and the organisation key configuration. Secrets are
encrypted at rest and never written to the audit log."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from console.audit.services import Actor, record
from console.fleet.models import Device
from console.storage.models import OrgKeyConfig, StorageTarget

PUBLIC_FIELDS = ("name", "endpoint", "bucket", "region", "prefix", "use_tls", "is_default")


def _state(target: StorageTarget) -> dict:
    state = {f: getattr(target, f) for f in PUBLIC_FIELDS}
    state["credentials"] = "set" if target.has_credentials else "none"
    return state


def _validate(data: dict, target: StorageTarget | None) -> dict:
    errors: dict[str, list[str]] = {}
    for f in ("name", "endpoint", "bucket"):
        if not str(data.get(f) or "").strip():
            errors[f] = ["This field is required."]
    bucket = str(data.get("bucket") or "").strip()
    if bucket and not (
        3 <= len(bucket) <= 63
        and bucket.isascii()
        and bucket.replace("-", "").replace(".", "").isalnum()
    ):
        errors["bucket"] = ["3–63 characters: lower-case letters, digits, dots and hyphens."]
    elif bucket and bucket != bucket.lower():
        errors["bucket"] = ["Bucket names are lower-case."]
    name = str(data.get("name") or "").strip()
    clash = StorageTarget.objects.filter(name__iexact=name)
    if target is not None:
        clash = clash.exclude(pk=target.pk)
    if name and clash.exists():
        errors["name"] = [f"A storage target named {name!r} already exists."]
    if errors:
        raise ValidationError(errors)
    return data


@transaction.atomic
def save_storage_target(
    actor: Actor, data: dict, target: StorageTarget | None = None
) -> StorageTarget:
    """Create or update a target. ``access_key``/``secret_key`` left empty on
    an update keep the stored credentials."""
    _validate(data, target)
    before = _state(target) if target is not None else None
    target = target or StorageTarget()
    for f in PUBLIC_FIELDS:
        if f in data:
            value = data[f]
            setattr(target, f, value.strip() if isinstance(value, str) else value)
    if data.get("access_key"):
        target.access_key = data["access_key"]
    if data.get("secret_key"):
        target.secret_key = data["secret_key"]
    target.updated_at = timezone.now()
    target.save()
    if target.is_default:
        StorageTarget.objects.exclude(pk=target.pk).update(is_default=False)
    record(
        actor,
        "storage.update" if before else "storage.create",
        target,
        before=before,
        after=_state(target),
    )
    return target


@transaction.atomic
def delete_storage_target(actor: Actor, target: StorageTarget) -> None:
    record(actor, "storage.delete", target, before=_state(target))
    target.delete()


def org_key_status() -> dict:
    """Where the organisation key is configured and whether it is readable."""
    config = OrgKeyConfig.objects.first()
    path = settings.ORG_KEY_FILE
    status = {
        "source": config.get_source_display() if config else "Key file on the console host",
        "location": config.location if config else str(path),
        "present": False,
        "fingerprint": "",
        "recorded_fingerprint": config.fingerprint if config else "",
    }
    try:
        data = path.read_bytes()
    except OSError:
        return status
    status["present"] = True
    status["fingerprint"] = hashlib.sha256(data).hexdigest()[:16]
    return status


@transaction.atomic
def record_org_key(actor: Actor) -> OrgKeyConfig:
    """Remember the current key's fingerprint, to detect an unexpected change."""
    status = org_key_status()
    config = OrgKeyConfig.objects.first() or OrgKeyConfig(location=str(settings.ORG_KEY_FILE))
    before = {"fingerprint": config.fingerprint} if config.pk else None
    config.fingerprint = status["fingerprint"]
    config.updated_at = timezone.now()
    config.save()
    record(actor, "orgkey.record", config, before=before, after={"fingerprint": config.fingerprint})
    return config


def storage_used() -> int:
    return Device.objects.filter(revoked=False).aggregate(total=Sum("storage_bytes"))["total"] or 0
