"""S3 / MinIO object store through the ``minio`` SDK.

:class:`S3Store` implements :class:`agent.engine.store.base.ObjectStore` on a bucket
and key prefix (``s3://BUCKET/PREFIX``). What it adds to a plain SDK client:

**Create-only puts.** Every PUT carries the S3 conditional-write header
``If-None-Match: *`` (AWS S3 since 2024-08, MinIO, Ceph RGW and moto honour
it): the server refuses atomically, with ``412 Precondition Failed``, to
replace an existing key, and :class:`~agent.engine.store.base.ObjectExists` is
raised. For large objects the multipart upload is *completed* with the same
header, so the check is atomic there too. The public ``Minio.put_object`` maps
unknown headers to ``x-amz-meta-*`` user metadata and so cannot send the
header; the store therefore drives the SDK's request layer (``_put_object``,
``_create_multipart_upload``, ``_upload_part``, ``_execute``), which is stable
across minio 7.x and pinned in ``requirements/agent.txt``.

A server that does not implement conditional writes answers ``501
NotImplemented``; the store then falls back, for its lifetime, to HEAD then PUT
(``conditional_put=False`` forces that mode; ``put_object`` with
``part_size`` does the multipart). **Limitation of the fallback:** the check
is not atomic, so two writers racing on the same key may both succeed and the
last one wins. That is harmless for this engine (a key is random or derived
from its content, so both writers write the same bytes), and production
buckets deny agents overwrite rights anyway. A server that *ignores* the
header (an old S3-compatible) silently overwrites, with the same harmless
outcome. A retried PUT whose first attempt did succeed (response lost) also
ends in ``ObjectExists``, which callers treat as "already stored" — correct,
for the same reason.

**Multipart.** Objects above ``multipart_threshold`` (64 MiB) are uploaded in
``part_size`` parts (16 MiB), ``parallel_parts`` at a time; the engine's packs
(16 MiB plus at most one chunk) stay below it and cost one request each.

**Retries.** Connection errors (refused, reset, DNS), connect/read timeouts,
truncated bodies, HTTP 5xx, 429 and S3's ``SlowDown``/``RequestTimeout``/
``InternalError`` codes are retried with exponential backoff and full jitter
(``sleep = uniform(0, min(cap, base * 2**attempt))``; ``max_retries`` further
attempts, 6 in total by default: at most ~8 s of sleeping, plus the requests'
own timeouts). urllib3's own retries are switched off so the policy is in one
place. Multipart uploads retry each part on its own, and abort the upload if
they finally fail. Listing resumes after the last key it returned.

**Timeouts and connections.** One ``urllib3.PoolManager`` with a connect and a
read timeout (10 s / 60 s by default) and ``max_connections`` keep-alive
connections to the endpoint (default 16: enough for the engine's parallel
pack uploads and restore downloads plus parallel multipart parts).

**Region.** Taken from ``region`` (``AWS_REGION``); without one, ``us-east-1``
for non-AWS endpoints (MinIO's default) rather than a GetBucketLocation call,
which prefix-scoped device credentials are usually not granted.

**Errors.** Every failure surfaces as :class:`~agent.engine.store.base.StoreError`
(or its subclasses) with one readable line naming the operation, the key, the
bucket and the endpoint: unreachable endpoint, rejected credentials, missing
bucket, access denied. No SDK or urllib3 exception leaks to callers (the SDK
exception is chained as ``__cause__`` for ``--debug``).
"""

from __future__ import annotations

import datetime as dt
import io
import random
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from minio.commonconfig import CopySource
from minio.error import S3Error
from minio.helpers import MIN_PART_SIZE, md5sum_hash

from agent.engine.store.base import (
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    StoreError,
    validate_key,
)
from agent.engine.store.s3client import check_settings, connect, http_pool, region_for
from agent.engine.store.s3errors import (
    NOT_FOUND_CODES,
    Exists,
    NotImplementedByServer,
    Retry,
    http_status,
    is_retriable,
    store_error,
)

__all__ = ["S3Store"]

T = TypeVar("T")


class S3Store(ObjectStore):
    """Objects under ``prefix/`` in an S3 bucket (see the module docstring)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint: str = "s3.amazonaws.com",
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
        secure: bool = True,
        *,
        session_token: str | None = None,
        multipart_threshold: int = 64 * 1024 * 1024,
        part_size: int = 16 * 1024 * 1024,
        parallel_parts: int = 4,
        max_connections: int = 16,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_retries: int = 5,
        backoff_base: float = 0.25,
        backoff_cap: float = 10.0,
        conditional_put: bool | None = None,
        list_page_size: int = 1000,
        cert_check: bool = True,
    ):
        check_settings(bucket, part_size)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._root = self.prefix + "/" if self.prefix else ""
        self.endpoint = endpoint
        self.secure = secure
        scheme = "https" if secure else "http"
        self.location = f"s3://{bucket}/{self.prefix} at {scheme}://{endpoint}"
        self._tune(multipart_threshold, part_size, parallel_parts, max_retries, list_page_size)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        #: True: If-None-Match on every put; False: HEAD then PUT; None: try the
        #: header and fall back if the server says it does not implement it.
        self.conditional_put = conditional_put
        #: attempts made by the last operations (tests and diagnostics)
        self.retries_done = 0
        self._bucket_checked = False
        self._lock = threading.Lock()
        self._http = http_pool(connect_timeout, read_timeout, max_connections, cert_check)
        self.region = region_for(endpoint, region)
        self._client = connect(
            endpoint, access_key, secret_key, session_token, secure, self.region, self._http
        )

    def _tune(
        self,
        multipart_threshold: int,
        part_size: int,
        parallel_parts: int,
        max_retries: int,
        list_page_size: int,
    ) -> None:
        """The sizes and counts, each bounded to what S3 accepts."""
        #: objects up to this size go in one PUT (the engine's packs, ~16-20 MiB,
        #: always do: one request each, and the write is atomic by nature)
        self.multipart_threshold = max(multipart_threshold, MIN_PART_SIZE)
        self.part_size = part_size
        self.parallel_parts = max(1, parallel_parts)
        self.max_retries = max(0, max_retries)
        self.list_page_size = max(1, min(1000, list_page_size))

    # -- keys ----------------------------------------------------------------------
    def _key(self, key: str) -> str:
        return self._root + validate_key(key)

    # -- the retry loop -------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * (2**attempt)))

    def _call(self, op: str, key: str | None, fn: Callable[[], T]) -> T:
        """Run ``fn`` with retries; translate every failure into a StoreError."""
        attempt = 0
        while True:
            try:
                return fn()
            except NotImplementedByServer:
                raise
            except Exception as exc:
                if not is_retriable(exc) or attempt >= self.max_retries:
                    raise self._error(op, key, exc, attempt + 1) from exc
            time.sleep(self._backoff(attempt))
            attempt += 1
            with self._lock:
                self.retries_done += 1

    def _error(self, op: str, key: str | None, exc: BaseException, attempts: int) -> StoreError:
        """One readable line for an SDK / network failure."""
        endpoint = f"{'https' if self.secure else 'http'}://{self.endpoint}"
        return store_error(op, key, exc, attempts, self.bucket, self.prefix, endpoint)

    def _check_bucket(self) -> None:
        """A HEAD of a key in a missing bucket looks like a missing key (no body
        to tell them apart): on the first miss, list one key of our own prefix
        (a permission the store needs anyway; HeadBucket may be denied to
        prefix-scoped credentials) to tell a missing bucket from a missing key."""
        if self._bucket_checked:
            return

        def probe() -> None:
            try:
                for _ in self._client._list_objects(self.bucket, prefix=self._root, max_keys=1):
                    break
            except S3Error as exc:
                if exc.code == "AccessDenied" or http_status(exc) == 403:
                    return  # cannot tell: assume the bucket is there
                raise

        self._call("find bucket", None, probe)
        self._bucket_checked = True

    # -- put ------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        name = self._key(key)
        if not isinstance(data, bytes):
            data = bytes(data)
        if self.conditional_put is not False:
            try:
                if len(data) <= self.multipart_threshold:
                    self._call("write", key, lambda: self._put_single(name, data))
                else:
                    self._put_multipart(key, name, data)
                return
            except NotImplementedByServer:
                self.conditional_put = False  # this server cannot: fall back for good
        # Fallback: HEAD then PUT; not atomic (see module docstring).
        if self.exists(key):
            raise ObjectExists(key, f"s3://{self.bucket}/{self.prefix}")
        self._call("write", key, lambda: self._put_plain(name, data))

    def _conditional_error(self, exc: S3Error) -> None:
        if exc.code == "PreconditionFailed" or http_status(exc) == 412:
            raise Exists() from exc
        if exc.code == "NotImplemented" or http_status(exc) == 501:
            raise NotImplementedByServer() from exc

    def _put_single(self, name: str, data: bytes) -> None:
        headers = {"Content-Type": "application/octet-stream", "If-None-Match": "*"}
        try:
            self._client._put_object(self.bucket, name, data, headers)
        except S3Error as exc:
            self._conditional_error(exc)
            raise
        self.conditional_put = True

    def _put_plain(self, name: str, data: bytes) -> None:
        self._client.put_object(
            self.bucket,
            name,
            io.BytesIO(data),
            len(data),
            # below the threshold: one part as large as the object, i.e. one PUT
            part_size=(
                self.part_size
                if len(data) > self.multipart_threshold
                else max(MIN_PART_SIZE, len(data))
            ),
            num_parallel_uploads=self.parallel_parts,
        )

    def _put_multipart(self, key: str, name: str, data: bytes) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        upload_id = self._call(
            "start multipart upload of",
            key,
            lambda: self._client._create_multipart_upload(self.bucket, name, dict(headers)),
        )
        view = memoryview(data)
        ranges = [
            (number, start, min(start + self.part_size, len(data)))
            for number, start in enumerate(range(0, len(data), self.part_size), start=1)
        ]

        def upload(part: tuple[int, int, int]) -> tuple[int, str]:
            number, start, end = part
            chunk = bytes(view[start:end])
            etag = self._call(
                f"upload part {number} of",
                key,
                lambda: self._client._upload_part(
                    self.bucket, name, chunk, None, upload_id, number
                ),
            )
            return number, etag

        try:
            with ThreadPoolExecutor(min(self.parallel_parts, len(ranges))) as pool:
                etags = sorted(pool.map(upload, ranges))
            self._call(
                "complete multipart upload of", key, lambda: self._complete(name, upload_id, etags)
            )
        except BaseException:
            try:
                self._client._abort_multipart_upload(self.bucket, name, upload_id)
            except Exception:  # best effort: a lifecycle rule reclaims the rest
                pass
            raise
        self.conditional_put = True

    def _complete(self, name: str, upload_id: str, etags: list[tuple[int, str]]) -> None:
        root = ET.Element("CompleteMultipartUpload")
        for number, etag in etags:
            part = ET.SubElement(root, "Part")
            ET.SubElement(part, "PartNumber").text = str(number)
            ET.SubElement(part, "ETag").text = f'"{etag}"'
        body = ET.tostring(root)
        headers = {
            "Content-Type": "application/xml",
            "Content-MD5": md5sum_hash(body),
            "If-None-Match": "*",
        }
        try:
            response = self._client._execute(
                "POST",
                self.bucket,
                name,
                body=body,
                headers=headers,
                query_params={"uploadId": upload_id},
            )
        except S3Error as exc:
            self._conditional_error(exc)
            raise
        # S3 may answer 200 with an <Error> body when completion fails late.
        if response.data and ET.fromstring(response.data).tag.rpartition("}")[2] == "Error":
            raise Retry(f"CompleteMultipartUpload failed: {response.data[:200]!r}")

    # -- reads ----------------------------------------------------------------------
    def _read(self, name: str, offset: int = 0, length: int = 0) -> bytes:
        response = self._client.get_object(self.bucket, name, offset=offset, length=length)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def get(self, key: str) -> bytes:
        name = self._key(key)
        return self._call("read", key, lambda: self._read(name))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise StoreError(f"invalid range {offset}+{length} for {key}")
        name = self._key(key)
        if length == 0:  # the SDK reads "length 0" as "to the end"
            if not self.exists(key):
                raise ObjectNotFound(key, f"s3://{self.bucket}/{self.prefix}")
            return b""

        def read() -> bytes:
            try:
                return self._read(name, offset, length)
            except S3Error as exc:
                if exc.code == "InvalidRange" or http_status(exc) == 416:
                    return b""  # entirely past the end: the bytes that exist are none
                raise

        return self._call("read", key, read)

    def _stat(self, key: str):
        name = self._key(key)

        def stat():
            try:
                return self._client.stat_object(self.bucket, name)
            except S3Error as exc:
                if exc.code in NOT_FOUND_CODES or http_status(exc) == 404:
                    return None
                raise

        info = self._call("inspect", key, stat)
        if info is None:
            self._check_bucket()
        return info

    def stat(self, key: str):
        """The object's metadata (``.size``, ``.last_modified``), or None
        when it does not exist."""
        return self._stat(key)

    def copy(self, src: str, dst: str) -> None:
        """Server-side copy (the bytes stay in the object store). For the
        console's maintenance only, like ``delete``: it does not refuse an
        existing ``dst``, so the caller checks first."""
        source = CopySource(self.bucket, self._key(src))
        name = self._key(dst)
        self._call("copy", dst, lambda: self._client.copy_object(self.bucket, name, source))

    def exists(self, key: str) -> bool:
        return self._stat(key) is not None

    def size(self, key: str) -> int:
        info = self._stat(key)
        if info is None:
            raise ObjectNotFound(key, f"s3://{self.bucket}/{self.prefix}")
        return int(info.size)

    def locked_until(self, key: str) -> dt.datetime | None:
        """The object's Object Lock retain-until date from its HEAD (the
        bucket's default retention stamps it on every new object)."""
        info = self._stat(key)
        if info is None:
            return None
        value = (info.metadata or {}).get("x-amz-object-lock-retain-until-date")
        if not value:
            return None
        until = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return until if until.tzinfo else until.replace(tzinfo=dt.UTC)

    def list(self, prefix: str = "") -> Iterator[str]:
        full = self._root + prefix
        cut = len(self._root)
        last: str | None = None
        attempt = 0
        while True:
            try:
                for obj in self._client._list_objects(
                    self.bucket,
                    prefix=full,
                    max_keys=self.list_page_size,
                    start_after=last,
                    encoding_type="url",
                ):
                    if obj.is_dir or not obj.object_name:
                        continue
                    last = obj.object_name
                    attempt = 0
                    yield obj.object_name[cut:]
                return
            except Exception as exc:
                if not is_retriable(exc) or attempt >= self.max_retries:
                    raise self._error("list", prefix or "(all)", exc, attempt + 1) from exc
            time.sleep(self._backoff(attempt))
            attempt += 1
            with self._lock:
                self.retries_done += 1

    def delete(self, key: str) -> None:
        name = self._key(key)
        self._call("delete", key, lambda: self._client.remove_object(self.bucket, name))

    def close(self) -> None:
        self._http.clear()
