"""Each device reaches object storage only through pre-signed grants for its
own prefix: it cannot read another device's repository, cannot delete, and
cannot overwrite an existing object - not even its own."""

from __future__ import annotations

import uuid

import grpc
import pytest
import urllib3

from agent.daemon.grantstore import GrantStore
from agent.engine.store import ObjectExists, StoreError
from agent.rpc import agent_pb2 as pb
from console.audit.services import SYSTEM
from console.fleet.services import create_enrollment_token
from tests.gateway.harness import StreamClient, enroll_agent

pytestmark = pytest.mark.slow


def _store(home) -> tuple[StreamClient, GrantStore]:
    client = StreamClient(home)
    from agent.daemon.home import AgentHome

    ident = AgentHome(home).load_identity()
    prefix = ident.repository_url.split("://", 1)[1].split("/", 1)[1]
    return client, GrantStore(client.stub, ident.repository_url, prefix=prefix)


def test_device_cannot_read_others_delete_or_overwrite(s3_gateway, s3_server, s3_bucket, tmp_path):
    token = create_enrollment_token(SYSTEM, "two", max_uses=2)[1]
    a_home, b_home = tmp_path / "a", tmp_path / "b"
    a_id = enroll_agent(a_home, s3_gateway, token)
    b_id = enroll_agent(b_home, s3_gateway, token)

    # Enrollment created each repository under <bucket>/acme/<device>/ (server side).
    admin = s3_server.client()
    keys = {o.object_name for o in admin.list_objects(s3_bucket, prefix="acme/", recursive=True)}
    assert f"acme/{a_id}/config" in keys and f"acme/{b_id}/config" in keys
    # The agent holds no storage credential at all.
    for home in (a_home, b_home):
        for f in home.iterdir():
            assert s3_server.secret_key.encode() not in f.read_bytes() or f.name == "repo.key"

    client, store = _store(a_home)
    try:
        # Its own repository: list, read, create.
        own = set(store.list(""))
        assert "config" in own and all(not k.startswith(("acme/", b_id)) for k in own)
        assert store.get("config").startswith(b"{")
        name = f"data/00/{uuid.uuid4().hex}"
        store.put(name, b"payload")
        assert store.get(name) == b"payload"

        # Overwrite: the grant carries If-None-Match, S3 refuses (412).
        with pytest.raises(ObjectExists):
            store.put(name, b"tampered")
        with pytest.raises(ObjectExists):
            store.put("config", b"{}")
        assert store.get(name) == b"payload"

        # Delete: no such grant exists, and the store refuses locally too.
        with pytest.raises(StoreError):
            store.delete(name)
        for method in ("DELETE", "POST", ""):
            with pytest.raises(grpc.RpcError) as err:
                client.stub.GetStorageGrant(
                    pb.StorageGrantRequest(method=method, object_keys=["config"]), timeout=10
                )
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # Another device's data: every way of naming it is refused.
        for key in (f"../{b_id}/config", f"data/../../{b_id}/config", f"/acme/{b_id}/config"):
            with pytest.raises(grpc.RpcError) as err:
                client.stub.GetStorageGrant(
                    pb.StorageGrantRequest(method="GET", object_keys=[key]), timeout=10
                )
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, key
        with pytest.raises(grpc.RpcError):
            client.stub.GetStorageGrant(
                pb.StorageGrantRequest(method="LIST", list_prefix=f"../{b_id}/"), timeout=10
            )
        # A grant names exactly one key under the device's own prefix.
        grant = client.stub.GetStorageGrant(
            pb.StorageGrantRequest(method="GET", object_keys=["config"]), timeout=10
        )
        assert f"/{s3_bucket}/acme/{a_id}/config?" in grant.urls[0].url
        put = client.stub.GetStorageGrant(
            pb.StorageGrantRequest(method="PUT", object_keys=["data/ff/x"]), timeout=10
        )
        assert dict(put.urls[0].headers) == {"If-None-Match": "*"}
        assert "if-none-match" in put.urls[0].url.lower()  # signed, cannot be dropped

        # Without a grant, the bucket refuses an anonymous request.
        r = urllib3.request("GET", f"{s3_server.endpoint}/{s3_bucket}/acme/{b_id}/config")
        assert r.status == 403
    finally:
        store.close()
        client.close()


def test_spool_lease_gives_write_once_slots_under_the_device_prefix(
    s3_gateway, s3_server, s3_bucket, tmp_path
):
    from console.fleet.models import Device

    token = create_enrollment_token(SYSTEM, "one", max_uses=1)[1]
    device_id = enroll_agent(tmp_path / "a", s3_gateway, token)
    client = StreamClient(tmp_path / "a")
    try:
        lease = client.stub.LeaseSpool(pb.SpoolLeaseRequest(slots=3), timeout=10)
        assert len(lease.slots) == 3 and len({s.id for s in lease.slots}) == 3
        issued, expires = lease.issued_at.ToDatetime(), lease.expires_at.ToDatetime()
        assert (expires - issued).total_seconds() == 7 * 24 * 3600

        slot = lease.slots[0]
        assert slot.object.object_key == f"spool/{slot.id}/object"
        assert slot.target.object_key == f"spool/{slot.id}/target"
        target = b'{"v": 1, "key": "data/00/' + b"0" * 64 + b'", "size": 7}'
        for part, body in ((slot.object, b"payload"), (slot.target, target)):
            assert dict(part.headers) == {"If-None-Match": "*"}
            assert "if-none-match" in part.url.lower()  # signed, cannot be dropped
            r = urllib3.request("PUT", part.url, body=body, headers=dict(part.headers))
            assert r.status == 200, r.data
            again = urllib3.request("PUT", part.url, body=b"x", headers=dict(part.headers))
            assert again.status == 412  # a slot is written once
        admin = s3_server.client()
        spooled = {
            o.object_name
            for o in admin.list_objects(
                s3_bucket, prefix=f"acme/{device_id}/spool/", recursive=True
            )
        }
        assert spooled == {
            f"acme/{device_id}/spool/{slot.id}/object",
            f"acme/{device_id}/spool/{slot.id}/target",
        }
        assert admin.get_object(s3_bucket, f"acme/{device_id}/spool/{slot.id}/object").data == (
            b"payload"
        )

        dev = Device.objects.get(pk=device_id)
        assert dev.spool_lease_issued_at.replace(tzinfo=None) == issued
        assert dev.spool_lease_expires_at.replace(tzinfo=None) == expires

        with pytest.raises(grpc.RpcError) as err:
            client.stub.LeaseSpool(pb.SpoolLeaseRequest(slots=0), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        client.close()
