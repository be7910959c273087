"""Storage grants against an S3 server that verifies SigV4 signatures.

moto (the suite's usual S3) checks no signature: a device's grant edited to
name another device's ``config`` was served there, and a GET URL sent as
DELETE deleted. So the grants are tampered with here against s3rver
(tests/s3sig, ``s3sig_server``), which recomputes the signature of every
signed request, header or pre-signed, and refuses expired URLs. The grants
are the gateway's own (``grants.grant``, ``grants.lease_spool``), signed
with that server's key pair; the tampered requests are plain HTTP
(http.client, so no client library tidies a path or a header away). Every
refusal also checks that nothing was served or changed, and every test first
shows the untampered grant working, so a server or grant that refused
everything would fail too.

What this module does not prove: that ``If-None-Match: *`` stops an
overwrite. s3rver ignores that header on PUT; moto honours it (412), which
tests/gateway/test_storage_grants.py proves. Here: the header is signed, so a
request that drops or changes it is refused (docs/security.md, "Grants proven
against a signature-checking server").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.client
import io
import re
import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

from agent.engine.store import StoreError
from console.storage import grants, targets
from console.storage.sigv4 import presign

SECRET = b"device B's repository config"


@dataclass
class Reply:
    status: int
    body: bytes

    @property
    def code(self) -> str:
        """The S3 error code of the reply (empty on success)."""
        m = re.search(rb"<Code>([^<]+)</Code>", self.body)
        return m.group(1).decode() if m else ""


def send(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> Reply:
    """One HTTP request with the URL's path and query sent byte for byte."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        r = conn.getresponse()
        return Reply(r.status, r.read())
    finally:
        conn.close()


def with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def with_query(url: str, **changes: str | None) -> str:
    """The URL with query parameters replaced, added, or removed (None)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@dataclass
class Fleet:
    server: object  # conftest.S3Server
    bucket: str
    a: str  # the device whose grants are tampered with
    b: str  # another device of the same organisation

    def key(self, device: str, rel: str) -> str:
        return f"acme/{device}/{rel}"

    def read(self, key: str) -> bytes | None:
        """The object's bytes as the console's own credentials see them."""
        client = self.server.client()
        try:
            r = client.get_object(self.bucket, key)
        except Exception as exc:
            if getattr(exc, "code", "") == "NoSuchKey":
                return None
            raise
        try:
            return r.read()
        finally:
            r.close()
            r.release_conn()

    def one(self, method: str, rel: str) -> tuple[str, dict]:
        """Device A's grant for one key: (url, headers to send)."""
        urls, _expires = grants.grant(self.a, method, [rel])
        (_key, url, headers) = urls[0]
        return url, headers


@pytest.fixture
def fleet(db, settings, s3sig_server) -> Fleet:
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    admin = s3sig_server.client()
    admin.make_bucket(bucket)
    settings.S3_ENDPOINT = s3sig_server.endpoint
    settings.S3_BUCKET = bucket
    settings.S3_REGION = s3sig_server.region
    settings.S3_ACCESS_KEY = s3sig_server.access_key
    settings.S3_SECRET_KEY = s3sig_server.secret_key
    settings.CAIRN_ORG = "acme"
    f = Fleet(s3sig_server, bucket, str(uuid.uuid4()), str(uuid.uuid4()))
    for device, body in ((f.a, b"device A's config"), (f.b, SECRET)):
        admin.put_object(bucket, f.key(device, "config"), io.BytesIO(body), len(body))
    admin.put_object(bucket, f.key(f.b, "data/00/b"), io.BytesIO(b"b-pack"), 6)
    return f


def refused(reply: Reply, code: str = "SignatureDoesNotMatch") -> None:
    assert (reply.status, reply.code) == (403, code), reply
    assert SECRET not in reply.body


def test_untampered_grants_work(fleet):
    """The baseline every refusal below is measured against."""
    url, headers = fleet.one("GET", "config")
    assert send("GET", url, headers=headers) == Reply(200, b"device A's config")
    url, headers = fleet.one("HEAD", "config")
    assert send("HEAD", url, headers=headers).status == 200

    url, headers = fleet.one("PUT", "data/00/new")
    assert headers == {"If-None-Match": "*"}
    assert send("PUT", url, b"new pack", headers).status == 200
    assert fleet.read(fleet.key(fleet.a, "data/00/new")) == b"new pack"

    urls, _ = grants.grant(fleet.a, "LIST", [])
    listing = send("GET", urls[0][1])
    assert listing.status == 200
    keys = set(re.findall(rb"<Key>([^<]+)</Key>", listing.body))
    assert keys == {f"acme/{fleet.a}/config".encode(), f"acme/{fleet.a}/data/00/new".encode()}


def test_grant_edited_to_another_devices_key_is_refused(fleet):
    url, headers = fleet.one("GET", "config")
    path = urlsplit(url).path
    other_bucket = f"t-{uuid.uuid4().hex[:12]}"
    fleet.server.client().make_bucket(other_bucket)
    for edited in (
        path.replace(fleet.a, fleet.b),  # the other device's config
        path.replace("/config", f"/../{fleet.b}/config"),  # a path trick in the URL
        path.replace("/config", f"/%2E%2E/{fleet.b}/config"),
        path.replace("/config", "/CONFIG"),
        path.replace(fleet.bucket, other_bucket),  # the same key in another bucket
    ):
        refused(send("GET", with_path(url, edited), headers=headers))

    # A write grant moved to the other device's prefix writes nothing there.
    url, headers = fleet.one("PUT", "data/00/x")
    edited = with_path(url, urlsplit(url).path.replace(fleet.a, fleet.b))
    refused(send("PUT", edited, b"planted", headers))
    assert fleet.read(fleet.key(fleet.b, "data/00/x")) is None
    edited = with_path(url, urlsplit(url).path.replace("data/00/x", "config"))
    refused(send("PUT", edited, b"{}", headers))
    assert fleet.read(fleet.key(fleet.a, "config")) == b"device A's config"


def test_grant_used_with_another_method_is_refused(fleet):
    config = fleet.key(fleet.a, "config")
    get_url, _ = fleet.one("GET", "config")
    for method, body in (("DELETE", None), ("PUT", b"{}"), ("HEAD", None), ("POST", b"")):
        refused(
            send(method, get_url, body), code="" if method == "HEAD" else "SignatureDoesNotMatch"
        )
    head_url, _ = fleet.one("HEAD", "config")
    refused(send("GET", head_url))
    put_url, headers = fleet.one("PUT", "config")
    refused(send("DELETE", put_url, headers=headers))
    refused(send("GET", put_url, headers=headers))
    assert fleet.read(config) == b"device A's config"

    # The LIST grant is a GET on the bucket: not a way to delete it.
    urls, _ = grants.grant(fleet.a, "LIST", [])
    refused(send("DELETE", urls[0][1]))
    assert fleet.server.client().bucket_exists(fleet.bucket)


def test_signed_header_dropped_or_changed_is_refused(fleet):
    url, headers = fleet.one("PUT", "data/00/y")
    key = fleet.key(fleet.a, "data/00/y")
    assert "X-Amz-SignedHeaders=host%3Bif-none-match" in url
    refused(send("PUT", url, b"no condition"))  # If-None-Match dropped
    refused(send("PUT", url, b"changed", {"If-None-Match": '"0123abcd"'}))
    refused(send("PUT", url, b"swapped", {"If-Match": "*"}))
    # Dropping it from the signed list as well breaks the signature.
    refused(send("PUT", with_query(url, X_Amz_SignedHeaders="host"), b"unsigned"))
    assert fleet.read(key) is None
    assert send("PUT", url, b"kept", headers).status == 200
    assert fleet.read(key) == b"kept"


def test_query_parameters_added_or_removed_are_refused(fleet):
    urls, _ = grants.grant(fleet.a, "LIST", [])
    url = urls[0][1]
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    for changes in (
        {"prefix": f"acme/{fleet.b}/"},  # list another device
        {"prefix": "acme/"},  # list the organisation
        {"prefix": None},  # list the bucket
        {"delimiter": "/"},
        {"max-keys": "5000"},
        {"X-Amz-Expires": "604800"},  # stretch the grant to a week
        {"X-Amz-Date": later},  # move the 15 minutes to later
    ):
        reply = send("GET", with_query(url, **changes))
        refused(reply)
        assert fleet.b.encode() not in reply.body, changes

    get_url, _ = fleet.one("GET", "config")
    refused(send("GET", with_query(get_url, versionId="1")))
    refused(send("GET", with_query(get_url, **{"response-content-type": "text/html"})))
    # No signature at all: a private bucket serves nothing.
    bare = urlunsplit(urlsplit(get_url)._replace(query=""))
    refused(send("GET", bare), code="AccessDenied")
    refused(send("GET", with_path(bare, bare.replace(fleet.a, fleet.b))), code="AccessDenied")
    reply = send("GET", with_query(get_url, X_Amz_Signature=None))
    assert (reply.status, reply.code) == (400, "AuthorizationQueryParametersError"), reply


def test_expired_grant_is_refused(fleet, monkeypatch):
    monkeypatch.setenv("CAIRN_GRANT_TTL_SECONDS", "1")
    urls, expires_at = grants.grant(fleet.a, "GET", ["config"])
    assert "X-Amz-Expires=1&" in urls[0][1]
    time.sleep(max(0.0, expires_at.timestamp() - time.time()) + 0.05)
    reply = send("GET", urls[0][1])
    refused(reply, code="AccessDenied")
    assert b"Request has expired" in reply.body

    # The boundary, with the signer the grants use and no wait: one second
    # inside a 15-minute validity is served, one second past it is not.
    t = targets.target()
    creds = dict(access_key=t.access_key, secret_key=t.secret_key, region=t.region, expires=900)
    key = fleet.key(fleet.a, "config")
    now = dt.datetime.now(dt.UTC)
    inside = presign("GET", t.endpoint, t.bucket, key, now=now - dt.timedelta(seconds=899), **creds)
    past = presign("GET", t.endpoint, t.bucket, key, now=now - dt.timedelta(seconds=901), **creds)
    assert send("GET", inside).status == 200
    refused(send("GET", past), code="AccessDenied")


def test_spool_slots_tampered_are_refused(fleet):
    """The offline spool lease's slots (week-long PUT URLs) under the same
    attacks: only the slot's own key, only PUT, only with If-None-Match."""
    slots, _issued, _expires = grants.lease_spool(fleet.a, 2)
    (sid, (_ok, obj_url, obj_headers), (_tk, tgt_url, tgt_headers)), (other_id, *_rest) = slots
    path = urlsplit(obj_url).path
    hijacks = (
        path.replace(f"spool/{sid}/object", "data/00/c"),  # straight into the repository
        path.replace(f"spool/{sid}/object", "config"),
        path.replace(sid, other_id),  # another slot of the lease
        path.replace(fleet.a, fleet.b),  # another device's spool
    )
    for edited in hijacks:
        refused(send("PUT", with_path(obj_url, edited), b"evil", obj_headers))
    refused(send("PUT", obj_url, b"evil"))  # If-None-Match dropped
    refused(send("DELETE", obj_url, headers=obj_headers))
    refused(send("GET", tgt_url, headers=tgt_headers))
    assert fleet.read(fleet.key(fleet.a, "data/00/c")) is None
    assert fleet.read(fleet.key(fleet.a, "config")) == b"device A's config"
    assert fleet.read(fleet.key(fleet.b, f"spool/{sid}/object")) is None

    assert send("PUT", obj_url, b"payload", obj_headers).status == 200
    assert send("PUT", tgt_url, b'{"v": 1}', tgt_headers).status == 200
    assert fleet.read(fleet.key(fleet.a, f"spool/{sid}/object")) == b"payload"


def test_header_signed_requests_are_verified_too(fleet):
    """The console's own store signs with an Authorization header: the same
    server refuses it with a wrong secret, so these are real checks."""
    t = targets.target()
    with targets.admin_store(t, fleet.a) as store:
        assert store.get("config") == b"device A's config"
    forged = dataclasses.replace(t, secret_key=t.secret_key + "x")
    with targets.admin_store(forged, fleet.a) as store, pytest.raises(StoreError):
        store.get("config")
    with pytest.raises(Exception) as err:
        fleet.server.client(secret_key="wrong").get_object(
            fleet.bucket, fleet.key(fleet.b, "config")
        )
    assert getattr(err.value, "code", "") == "SignatureDoesNotMatch"
