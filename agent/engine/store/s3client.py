"""Setting up S3Store's SDK client (agent/engine/store/s3.py): the checks on the
bucket and part size, the region a non-AWS endpoint needs, the one HTTP pool
with its timeouts, and the ``minio`` client on top of it."""

from __future__ import annotations

import os

import certifi
import urllib3
from minio import Minio
from minio.helpers import MIN_PART_SIZE, check_bucket_name

from agent.engine.store.base import StoreError


def check_settings(bucket: str, part_size: int) -> None:
    """Refuse, before any request, a bucket name S3 would refuse and a part size
    below S3's minimum."""
    if not bucket:
        raise StoreError("S3 store needs a bucket name")
    try:
        check_bucket_name(bucket)
    except ValueError as exc:
        raise StoreError(f"invalid S3 bucket name {bucket!r}: {exc}") from None
    if part_size < MIN_PART_SIZE:
        raise StoreError(f"S3 part size must be at least {MIN_PART_SIZE} bytes")


def region_for(endpoint: str, region: str | None) -> str | None:
    """The region to sign with: ``region`` if given, else us-east-1 off AWS."""
    if not region and "amazonaws.com" not in endpoint.lower():
        # Without a region the SDK asks GetBucketLocation before the first
        # request, which device credentials scoped to one prefix may not
        # be allowed to do. MinIO and most S3-compatibles default to us-east-1;
        # on AWS the SDK reads the region from the host name or asks.
        return "us-east-1"
    return region


def http_pool(
    connect_timeout: float, read_timeout: float, max_connections: int, cert_check: bool
) -> urllib3.PoolManager:
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        maxsize=max_connections,
        block=False,  # extra concurrent requests open extra (unkept) connections
        retries=False,  # retries are S3Store._call's, in one place
        cert_reqs="CERT_REQUIRED" if cert_check else "CERT_NONE",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
    )


def connect(
    endpoint: str,
    access_key: str | None,
    secret_key: str | None,
    session_token: str | None,
    secure: bool,
    region: str | None,
    http: urllib3.PoolManager,
) -> Minio:
    """The SDK client (no request is made yet)."""
    try:
        return Minio(
            endpoint,
            access_key=access_key or None,
            secret_key=secret_key if access_key else None,
            session_token=session_token or os.environ.get("AWS_SESSION_TOKEN") or None,
            secure=secure,
            region=region or None,
            http_client=http,
        )
    except ValueError as exc:  # bad endpoint syntax and the like
        raise StoreError(f"invalid S3 endpoint {endpoint!r}: {exc}") from exc
