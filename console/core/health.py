"""Probe the services the console depends on (database, broker, object storage)."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection

from console.core import keys


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def _redis() -> str:
    if not settings.REDIS_URL:
        return "embedded (filesystem broker)"
    redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()
    return "redis"


def _keys() -> str:
    missing = keys.missing_keys()
    if missing:
        raise keys.KeysMissing(f"missing: {', '.join(missing)}; {keys.INIT_HINT}")
    return "present"


def check_services() -> dict:
    checks = {}
    ok = True
    probes = [("database", _database), ("broker", _redis)]
    if settings.PRODUCTION:
        # Production never creates them on use: without them it is not ready.
        probes.append(("keys", _keys))
    for name, probe in probes:
        try:
            checks[name] = {"ok": True, "detail": probe()}
        except Exception as exc:  # a probe reports, it never raises
            ok = False
            checks[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    return {"ok": ok, "env": settings.CAIRN_ENV, "checks": checks}
