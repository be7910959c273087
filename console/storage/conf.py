"""Storage-access settings, each with a default, read from the environment:
how long grants and spool leases are valid, how many slots a lease gives."""

from __future__ import annotations

import os


def grant_ttl() -> int:
    return int(os.environ.get("CAIRN_GRANT_TTL_SECONDS", "900"))


#: a SigV4 pre-signed URL is valid for at most 7 days
PRESIGN_MAX_SECONDS = 7 * 24 * 3600


def spool_lease_seconds() -> int:
    """How long an offline spool lease's upload URLs stay valid (clamped to
    [1 hour, 7 days], the SigV4 maximum)."""
    value = int(os.environ.get("CAIRN_SPOOL_LEASE_SECONDS", str(PRESIGN_MAX_SECONDS)))
    return max(3600, min(PRESIGN_MAX_SECONDS, value))


def spool_lease_slots() -> int:
    """The most upload slots one spool lease gives."""
    return max(1, int(os.environ.get("CAIRN_SPOOL_LEASE_SLOTS", "1024")))
