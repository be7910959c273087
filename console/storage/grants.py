"""The storage grants the gateway hands out to devices (docs/security.md);
where each repository lives is console/storage/targets.py.

Choice: **pre-signed URLs from the gateway**, not scoped credentials.

* The agent never holds a storage credential, so nothing on a stolen PC can
  list the bucket, read another device's repository, or delete anything.
* The gateway signs one URL per object, only for keys under the device's own
  prefix, only for GET/HEAD/PUT/LIST, never DELETE, and every PUT is signed
  with ``If-None-Match: *``: S3 and MinIO refuse to replace an existing
  object (412), so a compromised agent cannot overwrite its own history
  either. Grants expire after ``CAIRN_GRANT_TTL_SECONDS`` (15 min).
* It works the same on AWS S3, MinIO and any S3-compatible store, with no
  per-device IAM users or STS sessions to provision and clean up.

Offline spool leases (``lease_spool``) are the one exception to "one URL per
object, for 15 minutes": the agent receives write-once PUT URLs valid for days,
but only for random keys under its own ``spool/``, so a device that reaches
storage and no gateway can still back up. The console validates and promotes
those objects itself (console/storage/spool.py); the agent never names the
final key with a URL of its own.

The embedded default (no ``S3_ENDPOINT``) is a local directory, used
directly by agents on the same machine: a development setup with no isolation
between devices, refused in production by the settings.

URLs name ``S3_PUBLIC_ENDPOINT`` when it is set (the address PCs reach
storage at, e.g. behind a reverse proxy or a published port), and are signed
for that host: the console itself keeps talking to ``S3_ENDPOINT``.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import secrets

from django.utils import timezone

from console.fleet.models import Device
from console.storage import conf
from console.storage.models import RestoreAccess
from console.storage.sigv4 import presign
from console.storage.targets import Target, device_prefix, target

METHODS = {"GET", "HEAD", "PUT", "LIST"}
MAX_KEYS_PER_GRANT = 1000
#: signed into every PUT: S3 and MinIO refuse to replace an existing object
WRITE_ONCE = {"If-None-Match": "*"}
#: where offline uploads wait for the console to promote them (console/storage/spool.py)
SPOOL = "spool"


class GrantRefused(Exception):
    pass


def _clean_key(key: str) -> str:
    """A relative key that stays inside the device's prefix."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise GrantRefused(f"invalid object key {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts) or posixpath.normpath(key) != key:
        raise GrantRefused(f"invalid object key {key!r}")
    return key


def _s3_target() -> Target:
    t = target()
    if t.kind != "s3":
        raise GrantRefused("storage is a local directory: agents write it directly")
    return t


def _credentials(t: Target, ttl: int) -> dict:
    return dict(access_key=t.access_key, secret_key=t.secret_key, region=t.region, expires=ttl)


def _presign_keys(
    t: Target, device_id: str, method: str, keys: list[str], ttl: int, now: dt.datetime
) -> list[tuple[str, str, dict]]:
    """(key, url, headers) for each relative key of the device's repository;
    every PUT is signed with ``If-None-Match: *`` (write once)."""
    base = device_prefix(t, device_id)
    headers = dict(WRITE_ONCE) if method == "PUT" else {}
    out = []
    for key in keys:
        url = presign(
            method,
            t.agent_endpoint,
            t.bucket,
            f"{base}/{_clean_key(key)}",
            headers=headers,
            now=now,
            **_credentials(t, ttl),
        )
        out.append((key, url, headers))
    return out


def grant(device_id: str, method: str, keys: list[str], list_prefix: str = "", token: str = ""):
    """Pre-signed URLs for ``method`` on ``keys`` of the device's own
    repository. Returns (list of (key, url, headers), expires_at)."""
    method = (method or "").upper()
    if method not in METHODS:
        raise GrantRefused(f"method {method or '(none)'} is not granted to devices")
    t = _s3_target()
    ttl = conf.grant_ttl()
    now = dt.datetime.now(dt.UTC)
    expires_at = now + dt.timedelta(seconds=ttl)
    if method == "LIST":
        base = device_prefix(t, device_id)
        if list_prefix:
            rel = list_prefix.rstrip("/")
            _clean_key(rel)
            full_prefix = f"{base}/{list_prefix}"
        else:
            full_prefix = f"{base}/"
        query = {"list-type": "2", "prefix": full_prefix, "max-keys": "1000"}
        if token:
            query["continuation-token"] = token
        url = presign(
            "GET", t.agent_endpoint, t.bucket, "", query=query, now=now, **_credentials(t, ttl)
        )
        return [(list_prefix, url, {})], expires_at
    if not keys:
        raise GrantRefused("no object keys requested")
    if len(keys) > MAX_KEYS_PER_GRANT:
        raise GrantRefused(f"at most {MAX_KEYS_PER_GRANT} keys per grant")
    return _presign_keys(t, device_id, method, keys, ttl, now), expires_at


#: what a target may do in another device's repository: read, never write
READ_METHODS = {"GET", "HEAD", "LIST"}


def grant_restore_read(
    target_id: str, access_id: int, method: str, keys: list[str], list_prefix: str = "", token=""
):
    """Read grants on another device's repository for a restore onto
    ``target_id`` (console/storage/restore_access.py): only while that
    device holds an open, unexpired access to it, and only GET, HEAD and
    LIST. Same answer as :func:`grant`."""
    method = (method or "").upper()
    if method not in READ_METHODS:
        raise GrantRefused(f"method {method or '(none)'} is not granted on another device's data")
    row = RestoreAccess.objects.filter(pk=access_id, target_id=target_id).first()
    if row is None or not row.open_at(timezone.now()):
        raise GrantRefused("no open restore access of this device to that repository")
    return grant(str(row.source_id), method, keys, list_prefix, token)


def spool_keys(spool_id: str) -> tuple[str, str]:
    """The repository-relative keys of one spool slot: (object, target)."""
    return f"{SPOOL}/{spool_id}/object", f"{SPOOL}/{spool_id}/target"


def lease_spool(device_id: str, slots: int):
    """An offline spool lease: ``min(slots, CAIRN_SPOOL_LEASE_SLOTS)`` upload
    slots, each two write-once PUT URLs valid for ``CAIRN_SPOOL_LEASE_SECONDS``
    (console/storage/spool.py promotes what arrives). The lease's times are
    recorded on the device: until it expires, maintenance does not sweep prune
    markers written after ``issued_at``.

    Returns (list of (id, (object key, url, headers), (target key, url,
    headers)), issued_at, expires_at)."""
    if slots < 1:
        raise GrantRefused("a spool lease needs at least one slot")
    t = _s3_target()
    ttl = conf.spool_lease_seconds()
    issued_at = dt.datetime.now(dt.UTC)
    expires_at = issued_at + dt.timedelta(seconds=ttl)
    out = []
    for _ in range(min(slots, conf.spool_lease_slots())):
        spool_id = secrets.token_hex(16)
        obj, tgt = _presign_keys(t, device_id, "PUT", list(spool_keys(spool_id)), ttl, issued_at)
        out.append((spool_id, obj, tgt))
    Device.objects.filter(pk=device_id).update(
        spool_lease_issued_at=issued_at, spool_lease_expires_at=expires_at
    )
    return out, issued_at, expires_at
