"""POST /api/v1/devices/{id}/restore/ with "target_device" (issue 11): a
RestoreAccess opened on the source repository (moto, real repositories), a
restore command queued to the TARGET with the mapping context, the one-time
key sealed at rest, absent from the audit log, opened only into the wire
message, and the access closed when the job finishes."""

from __future__ import annotations

import json

import pytest

from agent.engine import crypto
from agent.engine.errors import WrongKey
from agent.engine.repository import Repository
from console.audit.models import AuditEvent
from console.audit.services import SYSTEM
from console.fleet import services as fleet
from console.gateway import wire
from console.jobs.models import Command, Snapshot
from console.restore import onto
from console.storage.models import RestoreAccess
from tests.console.test_restore_access import pair, s3_settings, store_of  # noqa: F401

PROFILE = "/C/Users/ana"


@pytest.fixture
def snap(pair):  # noqa: F811
    (source, _), _ = pair
    Snapshot.objects.create(
        device=source,
        snapshot_id="a" * 64,
        paths=[f"{PROFILE}/Documents", f"{PROFILE}/AppData/Roaming/Thing", "/D/Projects"],
    )
    fleet.revoke_device(SYSTEM, source)  # the old PC is gone
    return "a" * 64


def url(dev) -> str:
    return f"/api/v1/devices/{dev.pk}/restore/"


def test_restore_onto_another_device(pair, snap, api):  # noqa: F811
    (source, source_key), (target, _) = pair
    r = api("operator").post(
        url(source),
        {
            "snapshot_id": snap,
            "target_device": str(target.pk),
            "paths": [f"{PROFILE}/Documents/Reports", f"{PROFILE}/Favorites"],
        },
        format="json",
    )
    assert r.status_code == 202, r.content
    cmd = Command.objects.get(pk=r.json()["id"])
    assert str(cmd.device_id) == str(target.pk) and cmd.kind == "restore"
    access = RestoreAccess.objects.get(pk=cmd.payload["restore_access"])
    assert (access.source_id, access.target_id, access.closed_at) == (source.pk, target.pk, None)
    assert cmd.expires_at == access.expires_at
    p = cmd.payload
    assert p["source_device"] == str(source.pk) and p["snapshot_id"] == snap
    assert p["mapping"]["source_os"] == "windows" and p["mapping"]["source_home"] == PROFILE
    assert p["mapping"]["entries"] == [
        [f"{PROFILE}/Documents/Reports", "{Documents}", "/Reports"],
        [f"{PROFILE}/Favorites", "{Favorites}", ""],
    ]
    assert "key" not in p and onto.SEALED in p

    # the key exists in clear only in the message written to the stream
    args = json.loads(wire.command_message(cmd).run_job.args_json)
    key = crypto.unb64(args["key"])
    assert len(key) == 32 and onto.SEALED not in args
    assert Repository.open(store_of(source), key=key, load_index=False)
    for text in (json.dumps(p), str(AuditEvent.objects.values_list("after", flat=True)[::1])):
        assert args["key"] not in text and key.hex() not in text
    ev = AuditEvent.objects.get(action="device.restore")
    assert ev.target_id == str(target.pk) and ev.after["source_device"] == str(source.pk)
    assert onto.SEALED not in ev.after
    assert AuditEvent.objects.filter(action="device.restore_access.open").count() == 1

    # sealed for this access and this target only
    other = dict(p, restore_access=p["restore_access"] + 1)
    with pytest.raises(Exception, match="authentication"):
        onto.wire_args(other, str(target.pk))
    with pytest.raises(Exception, match="authentication"):
        onto.wire_args(p, str(source.pk))

    # the job finished: the access closes, the key opens nothing any more
    assert onto.close_for_command(cmd) is True
    assert onto.close_for_command(cmd) is False
    with pytest.raises(WrongKey):
        Repository.open(store_of(source), key=key, load_index=False)


def test_refusals(pair, snap, api, users):  # noqa: F811
    (source, _), (target, _) = pair
    op = api("operator")

    def post(body, who=op):
        return who.post(url(source), {"snapshot_id": snap, **body}, format="json")

    t = str(target.pk)
    assert post({"target_device": t}, api("auditor")).status_code == 403
    r = post({"target_device": str(source.pk)})
    assert r.status_code == 400 and "in place" in r.content.decode()
    r = post({"target_device": t, "snapshot_id": "b" * 64})
    assert r.status_code == 400 and "no such snapshot" in r.content.decode()
    r = post({"target_device": t, "paths": [f"{PROFILE}/../bob"]})
    assert r.status_code == 400 and ".." in r.content.decode()
    r = post({"target_device": t, "paths": ["relative/x"]})
    assert r.status_code == 400
    # paths under two profiles: the source profile must be named
    r = post({"target_device": t, "paths": ["/C/Users/ana/x", "/C/Users/bob/y"]})
    assert r.status_code == 400 and "source_home" in r.content.decode()
    r = post(
        {
            "target_device": t,
            "paths": ["/C/Users/ana/x", "/C/Users/bob/y"],
            "source_home": "/C/Users/bob",
        }
    )
    assert r.status_code == 202, r.content
    assert str(Command.objects.get(pk=r.json()["id"]).device_id) == t
    fleet.revoke_device(SYSTEM, target)
    r = post({"target_device": t})
    assert r.status_code == 400 and "revoked" in r.content.decode()
    assert RestoreAccess.objects.count() == 1  # refusals opened nothing


def test_dashboard_form_restores_a_revoked_device_onto_another(pair, snap, ui):  # noqa: F811
    (source, _), (target, _) = pair
    c = ui("operator")
    page = c.get(f"/devices/{source.pk}/").content.decode()
    assert f"/devices/{source.pk}/restore/" in page and "Restore onto another device" in page
    form = c.get(f"/devices/{source.pk}/restore/").content.decode()
    assert f'value="{target.pk}"' in form and "This device" not in form  # source is revoked
    r = c.post(
        f"/devices/{source.pk}/restore/",
        {"snapshot_id": snap, "paths": f"{PROFILE}/Documents", "target_device": ""},
    )
    assert r.status_code == 200 and "Choose the device to restore onto" in r.content.decode()
    r = c.post(
        f"/devices/{source.pk}/restore/",
        {"snapshot_id": snap, "paths": f"{PROFILE}/Documents", "target_device": str(target.pk)},
    )
    assert r.status_code == 302 and r["Location"].endswith(f"/devices/{target.pk}/")
    cmd = Command.objects.get(device=target, kind="restore")
    assert cmd.payload["mapping"]["entries"] == [[f"{PROFILE}/Documents", "{Documents}", ""]]
    assert ui("auditor").get(f"/devices/{source.pk}/restore/").status_code == 403


def test_replace_a_device_through_the_api_and_the_page(pair, api, ui, users):  # noqa: F811
    from agent.engine.repository import Repository as Repo
    from console.core.keys import org_key

    (old, old_key), (new, new_key) = pair
    Snapshot.objects.create(device=old, snapshot_id="c" * 64, paths=["/home/ana"])
    url = f"/api/v1/devices/{old.pk}/replace/"
    assert api("operator").post(url, {"replacement": str(new.pk)}, format="json").status_code == 403
    r = api("admin").post(url, {"replacement": str(old.pk)}, format="json")
    assert r.status_code == 400 and "itself" in r.content.decode()
    page = ui("admin").get(f"/devices/{old.pk}/replace/").content.decode()
    assert f'value="{new.pk}"' in page
    r = ui("admin").post(f"/devices/{old.pk}/replace/", {"replacement": str(new.pk)})
    assert r.status_code == 302 and r["Location"].endswith(f"/devices/{new.pk}/")
    cmd = Command.objects.get(device=new, kind="takeover")
    key = crypto.unb64(json.loads(wire.command_message(cmd).run_job.args_json)["key"])
    assert Repo.open(store_of(new), key=key, load_index=False)  # the adopted copy
    assert Repo.open(store_of(new), key=org_key(), load_index=False)
    for gone in (old_key, new_key):  # the old PC's key does not open the copy
        with pytest.raises(WrongKey):
            Repo.open(store_of(new), key=gone, load_index=False)
    assert Repo.open(store_of(old), key=old_key, load_index=False)  # the original is untouched
    old.refresh_from_db()
    assert old.revoked and AuditEvent.objects.filter(action="device.takeover").count() == 1
    # again: the replacement now holds the history
    r = api("admin").post(url, {"replacement": str(new.pk)}, format="json")
    assert r.status_code == 400


def test_an_access_never_used_is_closed_when_it_expires(pair, snap, api):  # noqa: F811
    import datetime as dt

    from django.utils import timezone

    from console.storage import restore_access

    (source, _), (target, _) = pair
    body = {"snapshot_id": snap, "target_device": str(target.pk), "paths": [f"{PROFILE}/x"]}
    cmd = Command.objects.get(
        pk=api("operator").post(url(source), body, format="json").json()["id"]
    )
    key = crypto.unb64(json.loads(wire.command_message(cmd).run_job.args_json)["key"])
    assert restore_access.close_expired() == 0  # still open
    Repository.open(store_of(source), key=key, load_index=False)
    later = timezone.now() + restore_access.ACCESS_FOR + dt.timedelta(minutes=1)
    assert restore_access.close_expired(later) == 1
    assert restore_access.close_expired(later) == 0
    with pytest.raises(WrongKey):
        Repository.open(store_of(source), key=key, load_index=False)
