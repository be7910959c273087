"""Object stores: a flat namespace of immutable objects (``base``), kept in
a local directory (``local``) or an S3 bucket (``s3``), optionally behind an
upload limit (``throttle``). :func:`open_store` picks one from a URL.

``agent.engine.store`` is the import path for everything but ``S3Store``,
which needs the S3 SDK and is imported from ``agent.engine.store.s3`` (or
through :func:`open_store`) so that local use needs no SDK.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

from agent.engine.store.base import (
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    StoreError,
    validate_key,
)
from agent.engine.store.local import LocalStore

__all__ = [
    "LocalStore",
    "ObjectExists",
    "ObjectNotFound",
    "ObjectStore",
    "StoreError",
    "open_store",
    "validate_key",
]


def open_store(url: str, **opts) -> ObjectStore:
    """The store a repository URL names.

    * a local path, or ``file:///path``: :class:`LocalStore`
    * ``s3://BUCKET/PREFIX``: ``agent.engine.store.s3.S3Store`` (imported
      lazily, so local use needs no S3 SDK). Options, each falling back to the
      environment: ``endpoint`` (``CAIRN_S3_ENDPOINT``, a URL such as
      ``http://127.0.0.1:9000``; default ``https://s3.amazonaws.com``),
      ``access_key`` (``AWS_ACCESS_KEY_ID``), ``secret_key``
      (``AWS_SECRET_ACCESS_KEY``), ``region`` (``AWS_REGION`` /
      ``AWS_DEFAULT_REGION``), ``secure`` (from the endpoint's scheme).
      S3Store receives ``endpoint`` as ``host[:port]`` without scheme, and
      ``secure`` as a bool, which is what the minio SDK takes.

    Other options are passed through to the store's constructor.
    """
    if url.startswith("s3://"):
        parsed = urlparse(url)
        bucket = parsed.netloc
        prefix = parsed.path.strip("/")
        if not bucket:
            raise StoreError(f"no bucket in repository URL {url!r} (expected s3://BUCKET/PREFIX)")
        env = os.environ
        endpoint = (
            opts.pop("endpoint", None) or env.get("CAIRN_S3_ENDPOINT") or "https://s3.amazonaws.com"
        )
        secure = opts.pop("secure", None)
        if "://" in endpoint:
            scheme, _, endpoint = endpoint.partition("://")
            if secure is None:
                secure = scheme.lower() == "https"
        endpoint = endpoint.rstrip("/")
        if secure is None:
            secure = True
        access_key = opts.pop("access_key", None) or env.get("AWS_ACCESS_KEY_ID")
        secret_key = opts.pop("secret_key", None) or env.get("AWS_SECRET_ACCESS_KEY")
        region = (
            opts.pop("region", None)
            or env.get("AWS_REGION")
            or env.get("AWS_DEFAULT_REGION")
            or None
        )
        try:
            # lazily: local repositories work without the S3 SDK installed
            from agent.engine.store.s3 import S3Store
        except ImportError as exc:
            raise StoreError(f"S3 repositories are not available: {exc}") from exc
        return S3Store(
            bucket=bucket,
            prefix=prefix,
            endpoint=endpoint,
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            secure=secure,
            **opts,
        )
    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"file:// URL with a remote host is not supported: {url!r}")
        url = unquote(parsed.path)
    elif "://" in url:
        raise StoreError(f"unsupported repository URL {url!r} (use a path or s3://BUCKET/PREFIX)")
    return LocalStore(url, **opts)
