"""Revocation reaches open streams at once: console.fleet.signals.device_revoked
(sent after the revocation commits) is broadcast over Redis to every gateway,
which closes that device's stream. The gateway's periodic sweep is the safety
net when Redis is unavailable."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from console.fleet.signals import device_revoked
from console.gateway.registry import Registry

log = logging.getLogger(__name__)


@receiver(device_revoked, dispatch_uid="gateway-revoke-push")
def push_revocation(sender, device_id, **kwargs):
    try:
        Registry().broadcast({"type": "revoke", "device": str(device_id)})
    except Exception as exc:
        log.warning("could not broadcast revocation of %s: %s", device_id, exc)
