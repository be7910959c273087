"""Who is calling: the verified client certificate names a device; the device
row must exist, not be revoked, and pin that exact certificate."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction

from console.core import pki
from console.fleet.models import Device
from console.gateway.models import DeviceConnection


class Refused(Exception):
    """The caller is not (or no longer) an enrolled device."""

    def __init__(self, message: str, *, revoked: bool = False):
        super().__init__(message)
        self.revoked = revoked


@dataclass(frozen=True)
class Caller:
    device_id: str
    fingerprint: str
    #: the certificate's notAfter: becomes Device.cert_expires_at when a
    #: renewed certificate is promoted (alerts: certificate about to expire)
    not_after: dt.datetime | None = None


def caller_from_pem(cert_pem: bytes | str | None) -> Caller:
    if not cert_pem:
        raise Refused("a device certificate is required (mutual TLS)")
    if isinstance(cert_pem, str):
        cert_pem = cert_pem.encode()
    return Caller(
        device_id=pki.device_id_from_pem(cert_pem),
        fingerprint=pki.fingerprint(cert_pem),
        not_after=pki.not_after_from_pem(cert_pem),
    )


# One SELECT serves authentication and the stream's opening (facts, policy).
FIELDS = (
    "id",
    "revoked",
    "cert_fingerprint",
    "hostname",
    "os_version",
    "agent_version",
    "owner",
    "effective_hash",
    "applied_hash",
)


def authenticate(caller: Caller) -> Device:
    """The device, or Refused. Checked on every call and every stream open."""
    try:
        device = Device.objects.only(*FIELDS).get(pk=caller.device_id)
    except (Device.DoesNotExist, ValueError):
        raise Refused("unknown device") from None
    if device.revoked:
        raise Refused("device revoked", revoked=True)
    superseded = device.cert_fingerprint and device.cert_fingerprint != caller.fingerprint
    if superseded and not _promote_renewed(device, caller):
        raise Refused("certificate superseded (device re-enrolled)", revoked=True)
    return device


def _promote_renewed(device: Device, caller: Caller) -> bool:
    """First use of a renewed certificate: it becomes the pinned one (the
    previous certificate is refused from now on)."""
    fingerprint = caller.fingerprint
    with transaction.atomic():
        if not DeviceConnection.objects.filter(
            device_id=device.pk, next_cert_fingerprint=fingerprint
        ).update(next_cert_fingerprint=""):
            return False
        Device.objects.filter(pk=device.pk).update(
            cert_fingerprint=fingerprint, cert_expires_at=caller.not_after
        )
    device.cert_fingerprint = fingerprint
    return True


def renew(device_id: str, csr_pem: bytes, ca) -> bytes:
    """Sign a renewal CSR for an authenticated device. The new certificate is
    accepted alongside the current one until its first use."""
    cert = pki.sign_device_csr(ca, csr_pem, device_id)
    DeviceConnection.objects.update_or_create(
        device_id=device_id, defaults={"next_cert_fingerprint": cert.fingerprint}
    )
    return cert.pem


def revoked_among(device_ids) -> set[str]:
    """Which of these devices are revoked or gone (one query per 500)."""
    ids = [str(d) for d in device_ids]
    bad: set[str] = set()
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        live = set(
            str(pk)
            for pk in Device.objects.filter(pk__in=chunk, revoked=False).values_list(
                "pk", flat=True
            )
        )
        bad.update(set(chunk) - live)
    return bad
