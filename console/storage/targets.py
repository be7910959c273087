"""Where each device's repository lives (the default storage target) and the
console's own full-rights access to it: creating a device's repository at
enrollment, maintenance, spool promotion. Agents get grants instead
(console/storage/grants.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError

from agent.daemon import repo as repo_glue
from agent.engine.store import open_store
from console.core import keys
from console.storage.models import StorageTarget


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
    #: the endpoint agents use (grants are signed for its host); "" = endpoint
    public_endpoint: str = ""

    @property
    def agent_endpoint(self) -> str:
        """Where PCs reach the bucket: S3_PUBLIC_ENDPOINT, else the endpoint."""
        return self.public_endpoint or self.endpoint


def target() -> Target:
    """The default storage target: a StorageTarget row, else the S3_* settings,
    else the embedded local directory."""
    try:
        row = StorageTarget.objects.filter(is_default=True).first()
    except DatabaseError:  # table missing during early migrations
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
            public_endpoint=_with_scheme(settings.S3_PUBLIC_ENDPOINT),
        )
    return Target(
        kind="local", local_dir=str(Path(settings.LOCAL_STORAGE_DIR)), prefix=settings.CAIRN_ORG
    )


def _with_scheme(endpoint: str) -> str:
    if endpoint and "://" not in endpoint:
        return "http://" + endpoint
    return endpoint


def device_prefix(t: Target, device_id: str) -> str:
    return f"{t.prefix}/{device_id}" if t.prefix else str(device_id)


def repository_url(t: Target, device_id: str) -> str:
    if t.kind == "s3":
        return f"s3://{t.bucket}/{device_prefix(t, device_id)}"
    return (Path(t.local_dir) / device_prefix(t, device_id)).as_uri()


def admin_store(t: Target, device_id: str):
    """The console's own full-rights store for a device repository
    (enrollment bootstrap, maintenance, tests). Never handed to agents."""
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


def bootstrap_repository(t: Target, device_id: str, device_key: bytes) -> None:
    """Create the device's repository (server-side, full rights), its data
    keys wrapped by the organisation key and by the device key."""
    store = admin_store(t, device_id)
    try:
        repo_glue.init_repository(store, org_key=keys.org_key(), device_key=device_key)
    finally:
        store.close()
