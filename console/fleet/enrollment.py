"""Enrollment: a one-time token buys a device certificate.

The token is checked and consumed atomically (row lock), the device row is
created in the token's group, the CSR is signed by the console's CA with the
new device id as subject, and the device's repository is prepared in object
storage with a fresh per-device key (wrapped in the repository next to the
organisation key's wrap), which is returned to the agent once over TLS.
The gateway's Enroll handler only carries the request and this result
(console/gateway/server.py).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass

from django.db import transaction

from console.core import pki
from console.core.safejson import clean_text
from console.fleet import services as fleet
from console.fleet.models import Device
from console.storage import targets

log = logging.getLogger(__name__)


class EnrollmentRefused(Exception):
    pass


class EnrollmentUnavailable(Exception):
    """A transient failure (storage down): nothing was consumed; retry."""


@dataclass
class EnrollResult:
    device: Device
    certificate_pem: bytes
    ca_certificate_pem: bytes
    repository_url: str
    storage_endpoint: str
    storage_region: str
    storage_access: str
    repository_key: bytes
    org: str


def enroll(
    token: str, host: dict, csr_pem: bytes, ca: pki.CA | None = None, address: str | None = None
) -> EnrollResult:
    """Consume the token and create the device (console.fleet.services),
    sign its CSR, prepare its repository. Raises EnrollmentRefused."""
    # Host facts are the PC's word: a NUL would be a database error, not a device.
    host = {k: clean_text(v) if isinstance(v, str) else v for k, v in host.items()}
    ca = ca or pki.ensure_ca()
    device_id = uuid.uuid4()
    try:
        cert = pki.sign_device_csr(ca, csr_pem, device_id)
    except pki.PKIError as exc:
        raise EnrollmentRefused(str(exc)) from exc
    t = targets.target()
    device_key = os.urandom(32)
    try:
        # One transaction: if the repository cannot be created (storage
        # down), the token use and the device row are rolled back and the
        # agent can simply retry with the same token.
        with transaction.atomic():
            device = fleet.enroll_device(
                token.strip(),
                hostname=host.get("hostname") or "unknown",
                os=(host.get("os") or "").lower(),
                os_version=host.get("os_version") or "",
                agent_version=host.get("agent_version") or "",
                owner=host.get("username") or "",
                cert_fingerprint=cert.fingerprint,
                cert_expires_at=cert.not_after,
                device_id=device_id,
                address=address,
            )
            try:
                targets.bootstrap_repository(t, str(device.pk), device_key)
            except Exception as exc:
                log.exception("repository of %s could not be created", device.pk)
                raise EnrollmentUnavailable(f"storage unavailable: {exc}") from exc
    except fleet.EnrollmentError as exc:
        raise EnrollmentRefused(str(exc)) from exc
    return EnrollResult(
        device=device,
        certificate_pem=cert.pem,
        ca_certificate_pem=ca.cert_pem,
        repository_url=targets.repository_url(t, str(device.pk)),
        storage_endpoint=t.agent_endpoint,
        storage_region=t.region,
        storage_access="grant" if t.kind == "s3" else "direct",
        repository_key=device_key,
        org=t.prefix,
    )
