"""The bucket of the default storage target, prepared once at installation
(``manage.py init_installation``): created if missing, versioned, old
versions expired after ``S3_RETAIN_DAYS``, and with S3 Object Lock in
governance mode for the same number of days when ``S3_OBJECT_LOCK`` is set
(Object Lock can only be turned on when a bucket is created).

Why versioning: a grant lets a PC create objects, never replace or delete
them, but the console's own maintenance deletes; with versioning a
deleted or damaged object stays recoverable for the retention days
(docs/operations.md, "Storage")."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from minio import Minio
from minio.commonconfig import ENABLED, GOVERNANCE, Filter
from minio.error import S3Error
from minio.lifecycleconfig import LifecycleConfig, NoncurrentVersionExpiration, Rule
from minio.objectlockconfig import DAYS, ObjectLockConfig
from minio.versioningconfig import VersioningConfig

from console.env import env_int
from console.storage.targets import Target, target


class BucketError(Exception):
    pass


@dataclass(frozen=True)
class BucketState:
    bucket: str
    created: bool
    versioning: str  # "Enabled" | "Suspended" | "Off"
    object_lock: bool
    retain_days: int


def retain_days() -> int:
    days = env_int("S3_RETAIN_DAYS", 30)
    if not 1 <= days <= 3650:
        raise BucketError(f"S3_RETAIN_DAYS={days}: between 1 and 3650 days")
    return days


def _client(t: Target) -> Minio:
    parts = urlsplit(t.endpoint)
    return Minio(
        parts.netloc,
        access_key=t.access_key,
        secret_key=t.secret_key,
        region=t.region,
        secure=parts.scheme == "https",
    )


def prepare_bucket(object_lock: bool | None = None) -> BucketState:
    """Create the default target's bucket if missing and turn on versioning
    and the expiry of old versions (and Object Lock when asked for at
    creation). Idempotent: an existing bucket keeps what it has, gains
    versioning and the expiry rule."""
    t = target()
    if t.kind != "s3":
        raise BucketError("storage is a local directory (no S3_ENDPOINT): no bucket to prepare")
    lock = settings.S3_OBJECT_LOCK if object_lock is None else object_lock
    days = retain_days()
    client = _client(t)
    try:
        created = False
        if not client.bucket_exists(t.bucket):
            client.make_bucket(t.bucket, location=t.region, object_lock=lock)
            created = True
        client.set_bucket_versioning(t.bucket, VersioningConfig(ENABLED))
        rule = Rule(
            ENABLED,
            rule_filter=Filter(prefix=""),
            rule_id="cairn-expire-old-versions",
            noncurrent_version_expiration=NoncurrentVersionExpiration(noncurrent_days=days),
        )
        client.set_bucket_lifecycle(t.bucket, LifecycleConfig([rule]))
        has_lock = False
        try:
            has_lock = client.get_object_lock_config(t.bucket) is not None
        except S3Error as exc:
            if exc.code != "ObjectLockConfigurationNotFoundError":
                raise
        if has_lock and created:
            client.set_object_lock_config(t.bucket, ObjectLockConfig(GOVERNANCE, days, DAYS))
        if lock and not has_lock:
            raise BucketError(
                f"bucket {t.bucket} exists without Object Lock, which can only be turned on "
                "when a bucket is created: create it with Object Lock or unset S3_OBJECT_LOCK"
            )
        status = client.get_bucket_versioning(t.bucket).status
    except S3Error as exc:
        raise BucketError(f"bucket {t.bucket} at {t.endpoint}: {exc.code}: {exc.message}") from exc
    except OSError as exc:  # urllib3 connection errors are OSErrors
        raise BucketError(f"storage {t.endpoint} unreachable: {exc}") from exc
    return BucketState(t.bucket, created, status or "Off", has_lock, days)
