"""Where each device's repository lives, and the storage grants the gateway
hands out (docs/security.md).

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

The embedded default (no ``S3_ENDPOINT``) is a local directory, used
directly by agents on the same machine: a development setup with no isolation
between devices, refused in production by the settings.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from console.gateway import conf
from console.gateway.services.sigv4 import presign

METHODS = {"GET", "HEAD", "PUT", "LIST"}
MAX_KEYS_PER_GRANT = 1000


class GrantRefused(Exception):
    pass


@dataclass(frozen=True)
class Target:
    kind: str  # "s3" | "local"
    endpoint: str = ""  # URL, e.g. http://127.0.0.1:9000
    bucket: str = ""
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = ""
    prefix: str = ""  # usually the organisation
    local_dir: str = ""


def target() -> Target:
    """The default storage target: a StorageTarget row, else the S3_* settings,
    else the embedded local directory."""
    try:
        from console.storage.models import StorageTarget

        row = StorageTarget.objects.filter(is_default=True).first()
    except Exception:  # table missing during early migrations
        row = None
    if row is not None and row.has_credentials:
        endpoint = row.endpoint
        if "://" not in endpoint:
            endpoint = ("https://" if row.use_tls else "http://") + endpoint
        return Target(
            kind="s3",
            endpoint=endpoint,
            bucket=row.bucket,
            region=row.region,
            access_key=row.access_key,
            secret_key=row.secret_key,
            prefix=row.prefix or settings.CAIRN_ORG,
        )
    if settings.S3_ENDPOINT:
        endpoint = settings.S3_ENDPOINT
        if "://" not in endpoint:
            endpoint = "http://" + endpoint
        return Target(
            kind="s3",
            endpoint=endpoint,
            bucket=settings.S3_BUCKET,
            region=settings.S3_REGION,
            access_key=settings.S3_ACCESS_KEY,
            secret_key=settings.S3_SECRET_KEY,
            prefix=settings.CAIRN_ORG,
        )
    return Target(
        kind="local", local_dir=str(Path(settings.LOCAL_STORAGE_DIR)), prefix=settings.CAIRN_ORG
    )


def device_prefix(t: Target, device_id: str) -> str:
    return f"{t.prefix}/{device_id}" if t.prefix else str(device_id)


def repository_url(t: Target, device_id: str) -> str:
    if t.kind == "s3":
        return f"s3://{t.bucket}/{device_prefix(t, device_id)}"
    return (Path(t.local_dir) / device_prefix(t, device_id)).as_uri()


def admin_store(t: Target, device_id: str):
    """The console's own full-rights store for a device repository
    (enrollment bootstrap, maintenance, tests). Never handed to agents."""
    from agent.engine.store import open_store

    url = repository_url(t, device_id)
    if t.kind == "s3":
        return open_store(
            url,
            endpoint=t.endpoint,
            access_key=t.access_key,
            secret_key=t.secret_key,
            region=t.region,
        )
    return open_store(url)


def _clean_key(key: str) -> str:
    """A relative key that stays inside the device's prefix."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise GrantRefused(f"invalid object key {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts) or posixpath.normpath(key) != key:
        raise GrantRefused(f"invalid object key {key!r}")
    return key


def grant(device_id: str, method: str, keys: list[str], list_prefix: str = "", token: str = ""):
    """Pre-signed URLs for ``method`` on ``keys`` of the device's own
    repository. Returns (list of (key, url, headers), expires_at)."""
    method = (method or "").upper()
    if method not in METHODS:
        raise GrantRefused(f"method {method or '(none)'} is not granted to devices")
    t = target()
    if t.kind != "s3":
        raise GrantRefused("storage is a local directory: agents write it directly")
    ttl = conf.grant_ttl()
    expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
    base = device_prefix(t, device_id)
    common = dict(access_key=t.access_key, secret_key=t.secret_key, region=t.region, expires=ttl)
    out = []
    if method == "LIST":
        if list_prefix:
            rel = list_prefix.rstrip("/")
            _clean_key(rel)
            full_prefix = f"{base}/{list_prefix}"
        else:
            full_prefix = f"{base}/"
        query = {"list-type": "2", "prefix": full_prefix, "max-keys": "1000"}
        if token:
            query["continuation-token"] = token
        url = presign("GET", t.endpoint, t.bucket, "", query=query, **common)
        return [(list_prefix, url, {})], expires_at
    if not keys:
        raise GrantRefused("no object keys requested")
    if len(keys) > MAX_KEYS_PER_GRANT:
        raise GrantRefused(f"at most {MAX_KEYS_PER_GRANT} keys per grant")
    headers = {"If-None-Match": "*"} if method == "PUT" else {}
    for key in keys:
        full = f"{base}/{_clean_key(key)}"
        url = presign(method, t.endpoint, t.bucket, full, headers=headers, **common)
        out.append((key, url, headers))
    return out, expires_at
