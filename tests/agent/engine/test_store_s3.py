"""S3Store against moto's server mode over real HTTP.

Faults are injected by a small HTTP proxy in front of moto (``FaultProxy``):
it answers 503/501 or drops or stalls chosen requests, and forwards the rest
byte for byte, so the store's retry, timeout and fallback paths run against the
real SDK and a real S3 server. Bad credentials use a second moto server with
authentication switched on.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.engine.store import ObjectExists, ObjectNotFound, StoreError, open_store
from agent.engine.store.s3 import S3Store
from tests.support import free_port, port_open, wait_until

MiB = 1024 * 1024


def make_store(s3_server, bucket: str, host: str | None = None, **opts) -> S3Store:
    opts.setdefault("backoff_base", 0.01)
    opts.setdefault("backoff_cap", 0.05)
    return S3Store(
        bucket=bucket,
        prefix=opts.pop("prefix", "org/dev-1"),
        endpoint=host or s3_server.host,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        region=s3_server.region,
        secure=False,
        **opts,
    )


@pytest.fixture
def store(s3_server, s3_bucket):
    with make_store(s3_server, s3_bucket) as s:
        yield s


# --- a fault-injecting proxy -----------------------------------------------------------
Rule = Callable[[str, str, dict], str | None]


class FaultProxy:
    """Forwards HTTP to ``upstream``; ``rules`` pick requests to sabotage.

    A rule gets (method, path-with-query, headers) and returns None (forward)
    or an action: "503", "503html", "501", "403", "drop" (close without answering),
    "stall" (wait ``stall_seconds`` before forwarding).
    """

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.stall_seconds = 2.0
        self.seen: list[tuple[str, str, str]] = []  # (method, path, action)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action = None
                for rule in list(proxy.rules):
                    action = rule(self.command, self.path, dict(self.headers))
                    if action:
                        break
                proxy.seen.append((self.command, self.path, action or "forward"))
                if action == "drop":
                    self.close_connection = True
                    return
                if action in ("503", "503html", "501", "403"):
                    if action == "403":
                        payload = (
                            b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied'
                            b"</Code><Message>Access Denied</Message></Error>"
                        )
                        ctype, status = "application/xml", 403
                    elif action == "503html":
                        payload, ctype, status = b"<html>busy</html>", "text/html", 503
                    elif action == "501":
                        payload = (
                            b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented'
                            b"</Code><Message>A header you provided implies functionality that"
                            b" is not implemented</Message></Error>"
                        )
                        ctype, status = "application/xml", 501
                    else:
                        payload = (
                            b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown'
                            b"</Code><Message>Please reduce your request rate.</Message></Error>"
                        )
                        ctype, status = "application/xml", 503
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if action == "stall":
                    time.sleep(proxy.stall_seconds)
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except OSError:
                    self.close_connection = True
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def fail(self, action: str, times: int, method: str | None = None, match: str = "") -> None:
        """Sabotage the next ``times`` requests with ``method`` whose path contains ``match``."""
        left = [times]

        def rule(m: str, path: str, headers: dict) -> str | None:
            if (method and m != method) or match not in path or left[0] <= 0:
                return None
            left[0] -= 1
            return action

        self.rules.append(rule)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(s3_server):
    with FaultProxy(s3_server.host) as p:
        yield p


# --- basic semantics -----------------------------------------------------------------------
def test_round_trip_range_size_exists_delete(store, s3_server, s3_bucket):
    data = os.urandom(100_000)
    store.put("data/ab/abcdef", data)
    assert store.get("data/ab/abcdef") == data
    assert store.exists("data/ab/abcdef")
    assert not store.exists("data/ab/nothing")
    assert store.size("data/ab/abcdef") == len(data)
    assert store.get_range("data/ab/abcdef", 10, 1000) == data[10:1010]
    assert store.get_range("data/ab/abcdef", 99_990, 100) == data[99_990:]  # past the end
    assert store.get_range("data/ab/abcdef", 200_000, 10) == b""  # wholly past the end
    assert store.get_range("data/ab/abcdef", 5, 0) == b""
    # Stored under the prefix, in the bucket itself.
    raw = s3_server.client().get_object(s3_bucket, "org/dev-1/data/ab/abcdef")
    try:
        assert raw.read() == data
    finally:
        raw.close()
        raw.release_conn()
    store.delete("data/ab/abcdef")
    store.delete("data/ab/abcdef")  # missing: not an error
    assert not store.exists("data/ab/abcdef")
    store.put("empty", b"")
    assert store.get("empty") == b""


def test_missing_objects_raise_object_not_found(store):
    for call in (
        lambda: store.get("snapshots/none"),
        lambda: store.get_range("snapshots/none", 0, 10),
        lambda: store.get_range("snapshots/none", 0, 0),
        lambda: store.size("snapshots/none"),
    ):
        with pytest.raises(ObjectNotFound) as info:
            call()
        assert info.value.key == "snapshots/none"


def test_invalid_keys_are_refused(store):
    for key in ("", "/abs", "a/../b", "dir/", "a//b"):
        with pytest.raises(StoreError):
            store.put(key, b"x")


def test_put_is_create_only_with_conditional_write(store):
    store.put("keys/k1", b"first")
    with pytest.raises(ObjectExists):
        store.put("keys/k1", b"second")
    assert store.get("keys/k1") == b"first"
    assert store.conditional_put is True  # moto honours If-None-Match


def test_multipart_upload_of_a_large_object(store, s3_server, s3_bucket):
    store.part_size = store.multipart_threshold = 5 * MiB
    data = os.urandom(12 * MiB + 123)
    store.put("data/big", data)
    stat = s3_server.client().stat_object(s3_bucket, "org/dev-1/data/big")
    assert stat.size == len(data)
    assert stat.etag.endswith("-3"), stat.etag  # three parts
    assert store.get("data/big") == data
    start = 5 * MiB - 100  # across the first part boundary
    assert store.get_range("data/big", start, 200) == data[start : start + 200]
    with pytest.raises(ObjectExists):  # the completion is conditional too
        store.put("data/big", data)
    # No upload left dangling.
    uploads = list(s3_server.client()._list_multipart_uploads(s3_bucket).uploads)
    assert uploads == []


@pytest.mark.parametrize("conditional", [None, False])
def test_objects_below_the_threshold_go_in_one_put(s3_server, s3_bucket, proxy, conditional):
    opts = dict(part_size=5 * MiB, multipart_threshold=8 * MiB, conditional_put=conditional)
    with make_store(s3_server, s3_bucket, host=proxy.host, **opts) as s:
        data = os.urandom(7 * MiB)  # above part_size, below the threshold
        s.put("data/pack", data)
        assert s.get("data/pack") == data
    writes = [(m, p) for m, p, _ in proxy.seen if m in ("PUT", "POST")]
    assert len(writes) == 1 and "uploadId" not in writes[0][1], writes


def test_fallback_head_then_put(s3_server, s3_bucket):
    with make_store(
        s3_server, s3_bucket, conditional_put=False, part_size=5 * MiB, multipart_threshold=5 * MiB
    ) as s:
        s.put("a", b"1")
        with pytest.raises(ObjectExists):
            s.put("a", b"2")
        assert s.get("a") == b"1"
        big = os.urandom(11 * MiB)
        s.put("big", big)  # Minio.put_object with part_size: multipart
        assert s.get("big") == big


def test_server_without_conditional_writes_falls_back(s3_server, s3_bucket, proxy):
    proxy.rules.append(lambda m, p, h: "501" if "If-None-Match" in h else None)
    with make_store(s3_server, s3_bucket, host=proxy.host) as s:
        s.put("a", b"1")
        assert s.conditional_put is False
        with pytest.raises(ObjectExists):
            s.put("a", b"2")
        assert s.get("a") == b"1"


def test_list_paginates_and_strips_the_prefix(s3_server, s3_bucket):
    with make_store(s3_server, s3_bucket, list_page_size=7) as s:
        names = {f"data/{i:02x}/{uuid.uuid4().hex}" for i in range(20)}
        for name in names:
            s.put(name, b"x")
        s.put("index/i1", b"i")
        s.put("config", b"c")
        with make_store(s3_server, s3_bucket, prefix="org/dev-2") as other:
            other.put("data/00/foreign", b"f")  # another device's repository
        assert set(s.list("data/")) == names
        assert set(s.list("")) == names | {"index/i1", "config"}
        assert list(s.list("nothing/")) == []
        # Awkward but valid key characters survive listing (URL encoding).
        s.put("snapshots/a b+c%d", b"s")
        assert list(s.list("snapshots/")) == ["snapshots/a b+c%d"]


def test_parallel_puts_and_gets(store):
    blobs = {f"data/{i:02d}/{uuid.uuid4().hex}": os.urandom(50_000) for i in range(32)}
    errors: list[BaseException] = []

    def work(items):
        try:
            for k, v in items:
                store.put(k, v)
                assert store.get(k) == v
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    items = list(blobs.items())
    threads = [threading.Thread(target=work, args=(items[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(store.list("data/")) == set(blobs)


def test_open_store_builds_an_s3_store(s3_server, s3_bucket, monkeypatch):
    monkeypatch.setenv("CAIRN_S3_ENDPOINT", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_REGION", s3_server.region)
    with open_store(f"s3://{s3_bucket}/org/dev-9") as s:
        assert isinstance(s, S3Store)
        assert (s.bucket, s.prefix, s.secure) == (s3_bucket, "org/dev-9", False)
        s.put("config", b"c")
        assert list(s.list("")) == ["config"]


def test_no_region_lookup_without_a_region(s3_server, s3_bucket, proxy):
    """Prefix-scoped device credentials may not allow GetBucketLocation."""
    s = S3Store(s3_bucket, "org/dev-1", proxy.host, "testing", "testing", None, False)
    with s:
        s.put("config", b"c")
        assert s.get("config") == b"c"
    assert s.region == "us-east-1"
    assert not [p for _, p, _ in proxy.seen if "location" in p]


def test_missing_key_when_listing_is_denied(s3_server, s3_bucket, proxy):
    """A HEAD miss double-checks the bucket by listing; credentials that may
    not list still get a plain 'missing'."""
    proxy.rules.append(lambda m, p, h: "403" if m == "GET" and "list-type=2" in p else None)
    with make_store(s3_server, s3_bucket, host=proxy.host) as s:
        assert s.exists("locks/none") is False
        with pytest.raises(ObjectNotFound):
            s.size("locks/none")
        with pytest.raises(StoreError, match="access denied"):
            list(s.list("snapshots/"))


# --- retries and clear errors -----------------------------------------------------------------
def test_retries_5xx_then_succeeds(s3_server, s3_bucket, proxy):
    with make_store(s3_server, s3_bucket, host=proxy.host) as s:
        proxy.fail("503", 3, method="PUT")
        s.put("data/x", b"payload")
        assert s.retries_done == 3
        proxy.fail("503html", 2, method="GET")  # a non-XML 503 from a load balancer
        assert s.get("data/x") == b"payload"
        assert s.retries_done == 5
        proxy.fail("503", 2, method="HEAD")
        assert s.exists("data/x")
        assert s.retries_done == 7
    actions = [a for _, _, a in proxy.seen]
    assert actions.count("503") == 5 and actions.count("503html") == 2


def test_retries_dropped_connections_and_read_timeouts(s3_server, s3_bucket, proxy):
    # Timeouts generous enough for a loaded machine: only the stalled request
    # may time out (3 s stall against a 1.5 s read timeout).
    with make_store(s3_server, s3_bucket, host=proxy.host, read_timeout=1.5) as s:
        proxy.fail("drop", 2, method="PUT")
        s.put("data/y", b"payload")
        assert s.retries_done >= 2
        before = s.retries_done
        proxy.stall_seconds = 3.0
        proxy.fail("stall", 1, method="GET")
        t0 = time.monotonic()
        assert s.get_range("data/y", 1, 3) == b"ayl"
        assert time.monotonic() - t0 > 1.4  # it did wait for the read timeout
        assert s.retries_done >= before + 1
    assert [a for _, _, a in proxy.seen].count("drop") == 2


def test_list_resumes_after_a_failed_page(s3_server, s3_bucket, proxy):
    with make_store(s3_server, s3_bucket, host=proxy.host, list_page_size=5) as s:
        names = {f"index/{i:03d}" for i in range(12)}
        for name in names:
            s.put(name, b"i")
        pages = [0]

        def second_page_fails_once(method, path, headers):
            if method == "GET" and "list-type=2" in path:
                pages[0] += 1
                if pages[0] == 2:
                    return "503"
            return None

        proxy.rules.append(second_page_fails_once)
        listed = list(s.list("index/"))
        assert sorted(listed) == sorted(names)  # nothing lost, nothing twice
        assert s.retries_done == 1


def test_multipart_retries_a_failed_part(s3_server, s3_bucket, proxy):
    with make_store(
        s3_server, s3_bucket, host=proxy.host, part_size=5 * MiB, multipart_threshold=5 * MiB
    ) as s:
        proxy.fail("503", 1, method="PUT", match="partNumber=2")
        proxy.fail("drop", 1, method="POST", match="uploadId=")  # the completion
        data = os.urandom(11 * MiB)
        try:
            s.put("data/mp", data)
        except ObjectExists:
            pass  # the dropped completion did complete: the retry finds the object
        assert s.get("data/mp") == data
        assert s.retries_done >= 2
        part_puts = [p for m, p, _ in proxy.seen if m == "PUT" and "partNumber=2" in p]
        assert len(part_puts) == 2


def test_persistent_5xx_gives_a_clear_error(s3_server, s3_bucket, proxy):
    with make_store(s3_server, s3_bucket, host=proxy.host, max_retries=2) as s:
        proxy.fail("503", 100)
        with pytest.raises(StoreError) as info:
            s.get("config")
    message = str(info.value)
    assert "config" in message and "after 3 attempts" in message
    assert "SlowDown" in message
    assert "Traceback" not in message and "object at 0x" not in message


def test_unreachable_endpoint_gives_a_clear_error(s3_server):
    port = free_port()  # nothing listens there
    with make_store(s3_server, "bucket", host=f"127.0.0.1:{port}", max_retries=2) as s:
        t0 = time.monotonic()
        with pytest.raises(StoreError) as info:
            s.get("config")
        assert s.retries_done == 2
        assert time.monotonic() - t0 < 5
    message = str(info.value)
    assert f"cannot reach http://127.0.0.1:{port}" in message
    assert "refused" in message.lower()
    assert "object at 0x" not in message and "\n" not in message


def test_missing_bucket_gives_a_clear_error(s3_server):
    with make_store(s3_server, "no-such-bucket-here") as s:
        for call in (
            lambda: s.get("config"),
            lambda: s.put("config", b"c"),
            lambda: s.exists("config"),
            lambda: list(s.list("snapshots/")),
        ):
            with pytest.raises(StoreError) as info:
                call()
            assert not isinstance(info.value, ObjectNotFound)
            assert "bucket 'no-such-bucket-here' does not exist" in str(info.value)


@pytest.fixture(scope="module")
def moto_with_auth(tmp_path_factory):
    """A moto server of this module's own whose authentication is switched on
    (after a bucket is made), so wrong credentials are refused for real."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto-auth") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 30)
        assert proc.poll() is None, log.read_text()[-2000:]
        from minio import Minio

        Minio(f"127.0.0.1:{port}", "testing", "testing", secure=False).make_bucket("locked")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/moto-api/reset-auth", body=b"0")
        assert conn.getresponse().status == 200
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_bad_credentials_give_a_clear_error(moto_with_auth):
    s = S3Store(
        "locked", "org/dev-1", moto_with_auth, "AKIAWRONGWRONGWRONG1", "nope", "us-east-1", False
    )
    with s:
        for call in (lambda: s.get("config"), lambda: s.put("config", b"c")):
            with pytest.raises(StoreError) as info:
                call()
            message = str(info.value)
            assert "rejected the credentials (InvalidAccessKeyId" in message, message
            assert s.retries_done == 0  # not worth retrying
        with pytest.raises(StoreError, match="access denied|rejected the credentials"):
            s.exists("config")
