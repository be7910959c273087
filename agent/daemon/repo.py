"""Glue between the daemon (and the console's enrollment) and the engine's
repository: per-device key slots, opening the device's store."""

from __future__ import annotations

from agent.engine.repository import Repository
from agent.engine.store import ObjectStore, open_store


def init_repository(store: ObjectStore, *, org_key: bytes, device_key: bytes) -> Repository:
    """A new repository whose random data keys are wrapped twice: by the
    organisation key (the console can restore and maintain without the PC)
    and by the device's own key (what the agent holds). Revoking a device
    does not require re-encrypting anything: its key file can be removed
    server-side."""
    repo = Repository.init(store, org_key=org_key)
    repo.add_key(org_key=device_key)
    return repo


def open_device_store(identity, stub=None, offline=None) -> ObjectStore:
    """The device's repository store: pre-signed grants through the gateway
    (S3/MinIO), or the local directory of the embedded setup. ``offline``
    (agent.daemon.offline.OfflineSupport) lets a grant store carry on with a
    backup while the gateway is unreachable."""
    if identity.storage_access == "grant":
        from agent.daemon.grantstore import GrantStore

        if stub is None:
            raise RuntimeError("grant storage needs a gateway connection")
        url = identity.repository_url
        prefix = url.split("://", 1)[1].split("/", 1)[1] if url.startswith("s3://") else ""
        return GrantStore(stub, location=url, prefix=prefix, offline=offline)
    return open_store(identity.repository_url)


def open_source_store(identity, repository_url: str, access_id: int, stub=None) -> ObjectStore:
    """Another device's repository, read for a restore onto this device
    (issue 11): grants of the source prefix under the open restore access
    ``access_id`` (GET/HEAD/LIST only); the embedded setup's local directory
    is read directly (development only, no isolation)."""
    if identity.storage_access == "grant":
        from agent.daemon.grantstore import GrantStore

        if stub is None:
            raise RuntimeError("grant storage needs a gateway connection")
        url = repository_url
        prefix = url.split("://", 1)[1].split("/", 1)[1] if url.startswith("s3://") else ""
        return GrantStore(stub, location=url, prefix=prefix, restore_access=access_id)
    return open_store(repository_url)


def open_repository(store: ObjectStore, device_key: bytes, cache_dir=None) -> Repository:
    """``cache_dir`` keeps index objects, snapshots and tree packs on the PC:
    fewer requests, and what an offline backup reads."""
    return Repository.open(store, key=device_key, cache_dir=cache_dir)
