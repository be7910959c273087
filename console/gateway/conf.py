"""Gateway settings, each with a default, read from Django settings
(which read the environment: console/settings.py)."""

from __future__ import annotations

import os
import socket
import uuid

from django.conf import settings


def _get(name: str, default):
    return getattr(settings, name, default)


def bind() -> str:
    return _get("GATEWAY_BIND", "127.0.0.1:7443")


def enroll_bind() -> str:
    """The TLS-only listener that serves Enroll (no client certificate yet).
    Defaults to the mTLS port + 1."""
    value = _get("GATEWAY_ENROLL_BIND", "") or os.environ.get("CAIRN_GATEWAY_ENROLL_BIND", "")
    if value:
        return value
    host, _, port = bind().rpartition(":")
    return f"{host}:{int(port) + 1}"


def metrics_bind() -> str:
    """host:port of this gateway's Prometheus exporter (empty: none); one
    port per gateway process on a host."""
    return _get("GATEWAY_METRICS_BIND", "")


def public_address() -> str:
    return _get("GATEWAY_PUBLIC_ADDRESS", "") or bind()


def public_enroll_address() -> str:
    """Where PCs reach the enrollment listener (shown on the enrollment
    page): CAIRN_GATEWAY_ENROLL_ADDRESS, else the public address's host with
    the enrollment listener's port."""
    value = os.environ.get("CAIRN_GATEWAY_ENROLL_ADDRESS", "")
    if value:
        return value
    host = public_address().rpartition(":")[0]
    return f"{host}:{enroll_bind().rpartition(':')[2]}"


def heartbeat_interval() -> int:
    return int(os.environ.get("CAIRN_HEARTBEAT_SECONDS", "30"))


def heartbeat_flush_seconds() -> float:
    return float(os.environ.get("CAIRN_HEARTBEAT_FLUSH_SECONDS", "2"))


def sweep_seconds() -> float:
    """How often the gateway re-checks pending commands and revocations of
    the devices it holds (the safety net under Redis pub/sub)."""
    return float(os.environ.get("CAIRN_GATEWAY_SWEEP_SECONDS", "5"))


def offline_after_seconds() -> int:
    default = max(3 * heartbeat_interval(), 90)  # above the last-seen write resolution
    return int(os.environ.get("CAIRN_OFFLINE_AFTER_SECONDS", str(default)))


def redis_url() -> str:
    return _get("REDIS_URL", "")


def redis_prefix() -> str:
    return _get("REDIS_KEY_PREFIX", "cairn:")


def instance_id() -> str:
    return (
        os.environ.get("CAIRN_GATEWAY_ID")
        or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
