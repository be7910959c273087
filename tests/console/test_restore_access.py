"""Restore onto another device: the target gets a one-time key to the
source repository (console/storage/restore_access.py), never the
organisation key, against moto with real repositories."""

from __future__ import annotations

import datetime as dt
import os
import urllib.error
import urllib.request

import pytest
from django.utils import timezone

from agent.engine.backup import run_backup
from agent.engine.errors import WrongKey
from agent.engine.repository import Repository
from agent.engine.restore import run_restore
from console.audit.models import AuditEvent
from console.audit.services import SYSTEM, Actor
from console.core.keys import org_key
from console.fleet import services as fleet
from console.fleet.models import Device
from console.holds.models import Offboarding
from console.storage import grants, restore_access, targets
from console.storage.models import RestoreAccess
from console.storage.targets import bootstrap_repository


@pytest.fixture
def s3_settings(settings, s3_server, s3_bucket, tmp_path):
    settings.S3_ENDPOINT = s3_server.endpoint
    settings.S3_BUCKET = s3_bucket
    settings.S3_ACCESS_KEY = s3_server.access_key
    settings.S3_SECRET_KEY = s3_server.secret_key
    settings.CAIRN_ORG = "acme"
    settings.ORG_KEY_FILE = tmp_path / "keys" / "org.key"
    return settings


@pytest.fixture
def pair(db, s3_settings):
    group = fleet.create_group(SYSTEM, "G")
    _, token = fleet.create_enrollment_token(SYSTEM, "t", group, max_uses=5)
    out = []
    for name in ("old-pc", "new-pc"):
        dev = fleet.enroll_device(token, hostname=name, os="windows")
        device_key = os.urandom(32)
        bootstrap_repository(targets.target(), str(dev.pk), device_key)
        out.append((dev, device_key))
    return out


def store_of(dev):
    return targets.admin_store(targets.target(), str(dev.pk))


def test_the_target_opens_the_source_with_a_one_time_key_until_closed(pair, tmp_path, users):
    (source, source_key), (target, target_key) = pair
    src = tmp_path / "src"
    src.mkdir()
    (src / "report.docx").write_bytes(os.urandom(100_000))
    sid = run_backup(Repository.open(store_of(source), key=source_key), [str(src)]).snapshot_id
    fleet.revoke_device(SYSTEM, source)  # the old PC is gone
    source.refresh_from_db()

    # the target's own key opens only its own repository
    with pytest.raises(WrongKey):
        Repository.open(store_of(source), key=target_key)
    admin = Actor(user=users["admin"])
    access = restore_access.open_access(admin, source, target)
    assert len(access.key) == 32 and access.key not in (org_key(), source_key, target_key)
    assert access.repository_url.endswith(str(source.pk))
    assert access.key.hex() not in repr(access)

    repo = Repository.open(store_of(source), key=access.key)
    run_restore(repo, sid, str(tmp_path / "out"))
    restored = tmp_path / "out" / str(src).lstrip("/") / "report.docx"
    assert restored.read_bytes() == (src / "report.docx").read_bytes()
    with pytest.raises(WrongKey):  # nothing else opens with it
        Repository.open(store_of(target), key=access.key)

    restore_access.close_access(admin, access.id)
    with pytest.raises(WrongKey):
        Repository.open(store_of(source), key=access.key)
    assert Repository.open(store_of(source), key=org_key()).snapshot_ids() == [sid]
    opened = AuditEvent.objects.get(action="device.restore_access.open")
    assert opened.target_id == str(source.pk) and opened.after["target"] == str(target.pk)
    assert access.key.hex() not in str(opened.after)
    assert AuditEvent.objects.filter(action="device.restore_access.close").count() == 1


def test_refusals(pair, users):
    (source, _), (target, _) = pair
    admin = Actor(user=users["admin"])
    with pytest.raises(restore_access.AccessRefused, match="in place"):
        restore_access.open_access(admin, source, source)
    Offboarding.objects.create(device=source, hostname=source.hostname, deleted_by="system")
    with pytest.raises(restore_access.AccessRefused, match="offboarding"):
        restore_access.open_access(admin, source, target)
    fleet.revoke_device(SYSTEM, target)
    target = Device.objects.get(pk=target.pk)
    with pytest.raises(restore_access.AccessRefused, match="revoked"):
        restore_access.open_access(admin, Device.objects.get(pk=source.pk), target)


def fetch(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_gateway_signs_reads_of_the_source_only_for_an_open_access(pair, users):
    (source, _), (target, _) = pair
    admin = Actor(user=users["admin"])
    access = restore_access.open_access(admin, source, target)
    key = f"keys/{access.key_file}"

    ((got, url, headers),) = grants.grant_restore_read(str(target.pk), access.id, "GET", [key])[0]
    assert got == key and headers == {} and f"/{source.pk}/{key}" in url
    assert fetch(url) == 200  # a real GET of the source's object from moto
    (listing,) = grants.grant_restore_read(str(target.pk), access.id, "LIST", [], "keys/")[0]
    assert fetch(listing[1]) == 200
    # never a write, never for another device, never after the window or the close
    for method in ("PUT", "DELETE", ""):
        with pytest.raises(grants.GrantRefused, match="not granted"):
            grants.grant_restore_read(str(target.pk), access.id, method, [key])
    with pytest.raises(grants.GrantRefused, match="no open restore access"):
        grants.grant_restore_read(str(source.pk), access.id, "GET", [key])
    with pytest.raises(grants.GrantRefused, match="invalid object key"):
        grants.grant_restore_read(str(target.pk), access.id, "GET", ["../other/config"])
    RestoreAccess.objects.filter(pk=access.id).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    with pytest.raises(grants.GrantRefused, match="no open restore access"):
        grants.grant_restore_read(str(target.pk), access.id, "GET", [key])
    RestoreAccess.objects.filter(pk=access.id).update(
        expires_at=timezone.now() + dt.timedelta(hours=1)
    )
    restore_access.close_access(admin, access.id)
    with pytest.raises(grants.GrantRefused, match="no open restore access"):
        grants.grant_restore_read(str(target.pk), access.id, "GET", [key])
