"""S3_PUBLIC_ENDPOINT: agents reach storage at another address than the
console (compose: the console says http://minio:9000, PCs the published
port). Grants and the enrollment answer name the public endpoint and are
signed for its host, proven against the signature-checking S3 server behind
a port forward on 127.0.0.2 (the "outside"); the console keeps using
S3_ENDPOINT."""

from __future__ import annotations

import io
import uuid
from urllib.parse import urlsplit

import pytest

from console.storage import grants, targets
from tests.forward import Forwarder
from tests.gateway.test_grants_sigv4 import send


@pytest.fixture
def published(db, settings, s3sig_server):
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3sig_server.client().make_bucket(bucket)
    host, port = s3sig_server.host.split(":")
    with Forwarder(("127.0.0.2", 0), (host, int(port))) as fwd:
        settings.S3_ENDPOINT = s3sig_server.endpoint
        settings.S3_PUBLIC_ENDPOINT = f"http://{fwd.host_port}"
        settings.S3_BUCKET = bucket
        settings.S3_REGION = s3sig_server.region
        settings.S3_ACCESS_KEY = s3sig_server.access_key
        settings.S3_SECRET_KEY = s3sig_server.secret_key
        settings.CAIRN_ORG = "acme"
        yield s3sig_server, bucket, fwd


def test_grants_name_and_sign_for_the_public_endpoint(published):
    server, bucket, fwd = published
    device = str(uuid.uuid4())
    ((_, url, headers),) = grants.grant(device, "PUT", ["data/00/pack"])[0]
    assert urlsplit(url).netloc == fwd.host_port
    reply = send("PUT", url, b"pack bytes", headers)
    assert reply.status == 200, reply
    # The console, on its own endpoint, sees what the agent wrote.
    obj = server.client().get_object(bucket, f"acme/{device}/data/00/pack")
    assert obj.read() == b"pack bytes"
    ((_, get_url, _),) = grants.grant(device, "GET", ["data/00/pack"])[0]
    assert send("GET", get_url).body == b"pack bytes"
    # The same URL sent to the internal address does not verify: the host is signed.
    internal = get_url.replace(fwd.host_port, server.host)
    reply = send("GET", internal)
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch"), reply


def test_list_and_spool_grants_use_the_public_endpoint(published):
    server, bucket, fwd = published
    device = str(uuid.uuid4())
    server.client().put_object(bucket, f"acme/{device}/config", io.BytesIO(b"c"), 1)
    ((_, url, _),) = grants.grant(device, "LIST", [], list_prefix="")[0]
    assert urlsplit(url).netloc == fwd.host_port
    reply = send("GET", url)
    assert reply.status == 200 and f"acme/{device}/config".encode() in reply.body, reply
    slots, _, _ = grants.lease_spool(device, 1)
    _spool_id, (_key, put_url, headers), _target = slots[0]
    assert urlsplit(put_url).netloc == fwd.host_port
    assert send("PUT", put_url, b"offline", headers).status == 200


def test_without_public_endpoint_grants_name_the_console_endpoint(published, settings):
    server, _, _ = published
    settings.S3_PUBLIC_ENDPOINT = ""
    ((_, url, _),) = grants.grant(str(uuid.uuid4()), "HEAD", ["config"])[0]
    assert urlsplit(url).netloc == server.host
    assert targets.target().agent_endpoint == server.endpoint
