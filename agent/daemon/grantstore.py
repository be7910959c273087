"""An ObjectStore over pre-signed URLs from the gateway (docs/security.md).

The agent holds no storage credential. For each object it asks the gateway
(``GetStorageGrant`` over mutual TLS) for a short-lived URL scoped to one key
of its own repository, then talks to S3/MinIO directly with it: backup bytes
never pass through the console. PUT grants carry ``If-None-Match: *``, so an
existing object can never be replaced; there is no DELETE grant at all.

With an :class:`~agent.daemon.offline.OfflineSupport`, a store whose gateway
cannot be reached carries on for a backup: writes go through the leased spool
slots and reads of the repository's metadata come from the local view
(agent/daemon/offline.py). Reading backed-up data (restore, verify) still
needs the gateway.
"""

from __future__ import annotations

import json
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import grpc
import urllib3

from agent.daemon.offline import OfflineSupport
from agent.engine.store import ObjectExists, ObjectNotFound, ObjectStore, StoreError, validate_key
from agent.rpc import agent_pb2 as pb
from agent.rpc import agent_pb2_grpc as pb_grpc

_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
#: what a gateway that cannot be reached looks like from a grant call
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class GatewayUnreachable(StoreError):
    """No gateway answered the grant call (not: it refused the grant)."""


class GrantStore(ObjectStore):
    def __init__(
        self,
        stub: pb_grpc.AgentGatewayStub,
        location: str,
        prefix: str = "",
        offline: OfflineSupport | None = None,
        restore_access: int = 0,
    ):
        self.stub = stub
        #: reads of another device's repository under an open restore access
        #: (restore onto another device); the gateway grants GET/HEAD/LIST only
        self.restore_access = int(restore_access or 0)
        self.offline = offline
        #: set at the first unanswered grant call: the rest of this store's
        #: life (one job) does not wait for the gateway again
        self.gateway_down = False
        self.spooled_objects = 0
        self.location = location
        # Full key prefix of the repository (org/device/), to strip from listings.
        self.prefix = prefix.strip("/") + "/" if prefix else ""
        self.http = urllib3.PoolManager(
            num_pools=4,
            maxsize=8,
            timeout=urllib3.Timeout(connect=10, read=120),
            retries=urllib3.Retry(
                total=4,
                backoff_factor=0.5,
                status_forcelist=(500, 502, 503, 504),
                allowed_methods=None,
            ),
        )
        self._cache: dict[tuple[str, str], tuple[str, dict, float]] = {}
        self._lock = threading.Lock()

    # -- grants -------------------------------------------------------------------
    def _rpc_error(self, what: str, exc: grpc.RpcError) -> StoreError:
        message = f"no {what}: {exc.details() or exc.code().name}"
        if exc.code() in _UNREACHABLE:
            self.gateway_down = True
            return GatewayUnreachable(message)
        return StoreError(message)

    def _grant(self, method: str, key: str) -> tuple[str, dict]:
        if self.gateway_down:
            raise GatewayUnreachable(f"no {method} grant for {key}: the gateway is unreachable")
        now = time.time()
        with self._lock:
            hit = self._cache.get((method, key))
            if hit and hit[2] - 60 > now and method != "PUT":
                return hit[0], hit[1]
        try:
            resp = self.stub.GetStorageGrant(
                pb.StorageGrantRequest(
                    method=method, object_keys=[key], restore_access=self.restore_access
                ),
                timeout=30,
            )
        except grpc.RpcError as exc:
            raise self._rpc_error(f"{method} grant for {key}", exc) from None
        url = resp.urls[0]
        expires = resp.expires_at.ToSeconds() if resp.expires_at.seconds else now + 300
        if method != "PUT":
            with self._lock:
                self._cache[(method, key)] = (url.url, dict(url.headers), expires)
        return url.url, dict(url.headers)

    def _request(self, method: str, key: str, body=None, headers=None):
        url, signed = self._grant("HEAD" if method == "HEAD" else method, key)
        return self._send(method, key, url, body, {**signed, **(headers or {})})

    def _send(self, method: str, key: str, url: str, body, headers: dict):
        try:
            return self.http.request(method, url, body=body, headers=headers, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise StoreError(f"{method} {key}: {exc}") from exc

    def _offline(self, exc: GatewayUnreachable) -> OfflineSupport:
        """The offline support to carry on with, or the error again."""
        if self.offline is None:
            raise exc
        return self.offline

    # -- ObjectStore ------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        validate_key(key)
        try:
            r = self._request("PUT", key, body=bytes(data))
        except GatewayUnreachable as exc:
            self._spool(self._offline(exc), key, data)
            return
        if r.status == 412:
            raise ObjectExists(key, self.location)
        if r.status >= 300:
            raise StoreError(f"PUT {key}: HTTP {r.status} {r.data[:200]!r}")

    def _spool(self, offline: OfflineSupport, key: str, data: bytes) -> None:
        """Write ``key`` through a leased slot: the bytes, then where they
        belong. A slot found already written (only possible with a lease
        file restored from before its slots were used) is skipped."""
        target = json.dumps({"v": 1, "key": key, "size": len(data)}).encode()
        while True:
            slot = offline.take_slot()
            r = self._send("PUT", key, slot.object_url, bytes(data), slot.object_headers)
            if r.status == 412:
                continue
            if r.status >= 300:
                raise StoreError(f"offline PUT {key}: HTTP {r.status} {r.data[:200]!r}")
            r = self._send("PUT", key, slot.target_url, target, slot.target_headers)
            if r.status >= 300:
                raise StoreError(f"offline PUT {key} (target): HTTP {r.status}")
            offline.spooled(key)
            with self._lock:
                self.spooled_objects += 1
            return

    def get(self, key: str) -> bytes:
        validate_key(key)
        try:
            r = self._request("GET", key)
        except GatewayUnreachable as exc:
            return self._offline(exc).object(key)
        if r.status == 404:
            raise ObjectNotFound(key, self.location)
        if r.status >= 300:
            raise StoreError(f"GET {key}: HTTP {r.status}")
        if self.offline is not None:
            self.offline.record_object(key, r.data)
        return r.data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        validate_key(key)
        if length <= 0:
            return b""
        r = self._request("GET", key, headers={"Range": f"bytes={offset}-{offset + length - 1}"})
        if r.status == 404:
            raise ObjectNotFound(key, self.location)
        if r.status == 416:
            return b""
        if r.status >= 300:
            raise StoreError(f"GET {key} (range): HTTP {r.status}")
        data = r.data
        if r.status == 200:  # server ignored the range
            data = data[offset : offset + length]
        return data

    def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            r = self._request("HEAD", key)
        except GatewayUnreachable as exc:
            return self._offline(exc).knows(key)
        if r.status == 404:
            return False
        if r.status >= 300:
            raise StoreError(f"HEAD {key}: HTTP {r.status}")
        return True

    def size(self, key: str) -> int:
        r = self._request("HEAD", validate_key(key))
        if r.status == 404:
            raise ObjectNotFound(key, self.location)
        if r.status >= 300:
            raise StoreError(f"HEAD {key}: HTTP {r.status}")
        return int(r.headers.get("Content-Length", 0))

    def list(self, prefix: str = "") -> Iterator[str]:
        try:
            keys = list(self._list(prefix))
        except GatewayUnreachable as exc:
            return iter(self._offline(exc).listing(prefix))
        if self.offline is not None:
            keys = self.offline.record_listing(prefix, keys)
        return iter(keys)

    def _list(self, prefix: str) -> Iterator[str]:
        token = ""
        while True:
            if self.gateway_down:
                raise GatewayUnreachable(
                    f"no LIST grant for {prefix!r}: the gateway is unreachable"
                )
            try:
                resp = self.stub.GetStorageGrant(
                    pb.StorageGrantRequest(
                        method="LIST",
                        list_prefix=prefix,
                        continuation_token=token,
                        restore_access=self.restore_access,
                    ),
                    timeout=30,
                )
            except grpc.RpcError as exc:
                raise self._rpc_error(f"LIST grant for {prefix!r}", exc) from None
            r = self._send("GET", f"(list {prefix!r})", resp.urls[0].url, None, {})
            if r.status >= 300:
                raise StoreError(f"LIST {prefix!r}: HTTP {r.status}")
            root = ET.fromstring(r.data)
            for item in root.iter(f"{_S3_NS}Contents"):
                full = item.findtext(f"{_S3_NS}Key") or ""
                if full.startswith(self.prefix):
                    yield full[len(self.prefix) :]
            truncated = (root.findtext(f"{_S3_NS}IsTruncated") or "false") == "true"
            token = root.findtext(f"{_S3_NS}NextContinuationToken") or ""
            if not truncated or not token:
                return

    def delete(self, key: str) -> None:
        raise StoreError(
            f"cannot delete {key}: devices have no delete rights (server-side maintenance only)"
        )

    def close(self) -> None:
        self.http.clear()
