"""The command state machine on the Command model (pending → sent →
acknowledged → done | failed | expired, never backwards), the batched
command services the gateway calls (console/jobs/commands.py) and the
delivery seam's transport (console/jobs/dispatch.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from console.audit.services import SYSTEM
from console.fleet.models import Device
from console.fleet.services import revoke_device
from console.gateway.services import delivery
from console.jobs import commands, dispatch
from console.jobs.models import Command, CommandKind, CommandState
from console.jobs.services import request_backup

pytestmark = pytest.mark.django_db


def _command(**kw) -> Command:
    device = Device.objects.create(hostname=kw.pop("hostname", "pc-1"), os="linux")
    return request_backup(SYSTEM, device)


def test_instance_transitions_move_forward_only_and_refresh_the_row():
    cmd = _command()
    assert cmd.mark_sent() and cmd.state == CommandState.SENT and cmd.attempts == 1
    assert cmd.acknowledge() and cmd.acknowledged_at is not None
    assert not cmd.mark_sent()  # no way back
    assert cmd.state == CommandState.ACKNOWLEDGED
    assert cmd.finish(ok=False, error="disk full")
    assert cmd.state == CommandState.FAILED and cmd.error == "disk full"
    assert not cmd.finish(ok=True) and not cmd.expire("late")  # final is final
    cmd.refresh_from_db()
    assert cmd.state == CommandState.FAILED


def test_queryset_transitions_skip_rows_already_further():
    a, b = _command(hostname="a"), _command(hostname="b")
    b.finish(ok=True)
    assert Command.objects.filter(pk__in=[a.pk, b.pk]).mark_sent() == 1
    assert Command.objects.filter(pk__in=[a.pk, b.pk]).expire("gone") == 1
    a.refresh_from_db()
    assert a.state == CommandState.EXPIRED and a.error == "gone"
    assert set(Command.objects.filter(pk__in=[a.pk, b.pk]).open()) == set()


def test_deliverable_is_pending_or_sent_and_unexpired():
    cmd = _command()
    assert commands.deliverable_for(cmd.device_id) == [cmd]
    cmd.mark_sent()
    assert commands.deliverable_for(cmd.device_id) == [cmd]
    Command.objects.filter(pk=cmd.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert commands.deliverable_for(cmd.device_id) == []


def test_an_agents_junk_command_id_names_nothing():
    """What an agent sends is untrusted: a malformed id is no command (it was
    ``except (ValueError, Exception)`` around a query), never an error."""
    cmd = _command()
    for junk in ("", "not-a-uuid", "policy:abc", "1" * 40, None):
        assert commands.get(junk) is None
        commands.acknowledge(str(cmd.device_id), junk, False, "whatever")
    assert commands.get_many(["nope", str(cmd.pk)]) == [cmd]
    assert commands.get(str(cmd.pk)) == cmd
    cmd.refresh_from_db()
    assert cmd.state == CommandState.PENDING


def test_acknowledge_one():
    cmd = _command()
    other = Device.objects.create(hostname="other", os="linux")
    commands.acknowledge(str(other.pk), str(cmd.pk), True)  # not its command
    cmd.refresh_from_db()
    assert cmd.state == CommandState.PENDING
    commands.acknowledge(str(cmd.device_id), str(cmd.pk), False, "expired")
    cmd.refresh_from_db()
    assert cmd.state == CommandState.EXPIRED and cmd.error == "expired before it ran"
    cancel = Command.objects.create(
        device_id=cmd.device_id, kind=CommandKind.CANCEL, payload={"command": str(cmd.pk)}
    )
    commands.acknowledge(str(cmd.device_id), str(cancel.pk), True)
    cancel.refresh_from_db()
    assert cancel.state == CommandState.DONE and cancel.acknowledged_at is not None


def test_the_gateway_registered_its_transport_and_none_means_offline(monkeypatch):
    """The domain never imports the gateway: the gateway's AppConfig hands its
    delivery to the seam."""
    assert dispatch._transport is delivery.deliver
    seen = []
    monkeypatch.setattr(dispatch, "_transport", lambda cid: seen.append(cid) or "published")
    assert dispatch.deliver("c1") == "published" and seen == ["c1"]
    monkeypatch.setattr(dispatch, "_transport", None)
    assert dispatch.deliver("c1") == "offline"


def test_revoking_a_device_expires_its_open_commands_only():
    pending = _command()
    done = request_backup(SYSTEM, pending.device)
    done.finish(ok=True)
    revoke_device(SYSTEM, pending.device, reason="stolen")
    pending.refresh_from_db()
    done.refresh_from_db()
    assert pending.state == CommandState.EXPIRED and pending.error == "device revoked"
    assert done.state == CommandState.DONE


def test_drifted_devices_are_those_not_running_their_target():
    from console.policies.services import drifted

    on_target, behind, revoked, none = (
        Device.objects.create(hostname=h, os="linux", effective_hash=e, applied_hash=a, revoked=r)
        for h, e, a, r in (
            ("on", "h1", "h1", False),
            ("behind", "h2", "h1", False),
            ("revoked", "h2", "", True),
            ("none", "", "", False),
        )
    )
    ids = [d.pk for d in (on_target, behind, revoked, none)]
    assert drifted(ids) == [(str(behind.pk), "h2")]
