"""Service functions: policies and rollout, enrollment, commands and the
dispatch seam, agent reports (idempotent), storage, users."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from console.audit.models import AuditEvent
from console.audit.services import SYSTEM, Actor
from console.fleet import services as fleet
from console.fleet.filters import devices as device_filter
from console.fleet.models import Device
from console.fleet.queries import overview
from console.jobs import dispatch
from console.jobs import services as jobs
from console.jobs.models import Command, CommandKind, CommandState, DailyJobStats, JobRun, Snapshot
from console.policies import services as policies
from console.policies import spec as specs
from console.storage import services as storage
from tests.console.conftest import enroll

pytestmark = pytest.mark.django_db


# --- policies ----------------------------------------------------------------------------


def test_invalid_policy_is_never_saved():
    bad = specs.default_spec()
    bad["schedule"]["every_hours"] = 0
    with pytest.raises(policies.PolicyValidationError) as exc:
        policies.create_policy(SYSTEM, "Broken", bad)
    assert "schedule.every_hours" in exc.value.errors
    assert not policies.Policy.objects.exists()


def test_every_save_of_a_changed_spec_is_a_new_revision(small_fleet):
    policy = small_fleet.policy
    r1 = policy.current_revision
    spec = specs.default_spec()
    spec["schedule"]["every_hours"] = 2
    policies.update_policy(SYSTEM, policy, "Standard", spec, comment="more often")
    policy.refresh_from_db()
    r2 = policy.current_revision
    assert (r1.number, r2.number) == (1, 2) and r1.hash != r2.hash
    assert {d["path"] for d in policies.revision_diff(r2)} == {"schedule.every_hours"}
    # unchanged spec, new description: no new revision
    policies.update_policy(SYSTEM, policy, "Standard", spec, description="doc")
    policy.refresh_from_db()
    assert policy.current_revision_id == r2.id and policy.description == "doc"


def test_policy_names_are_unique_case_insensitively(small_fleet):
    with pytest.raises(policies.PolicyValidationError) as exc:
        policies.create_policy(SYSTEM, "standard", specs.default_spec())
    assert "name" in exc.value.errors


def test_effective_policy_follows_precedence(small_fleet):
    device = small_fleet.devices[0]
    strict = specs.default_spec()
    strict["rpo_hours"], strict["schedule"]["every_hours"] = 4, 1
    strict["excludes"] = ["*.iso"]
    execs = policies.create_policy(SYSTEM, "Executives", strict)
    fleet.set_device_groups(SYSTEM, device, [small_fleet.group, small_fleet.other_group])
    policies.assign_policy(SYSTEM, execs, small_fleet.other_group, 10)
    device.refresh_from_db()
    eff = policies.effective_policy_for_device(device)
    assert eff.policy == execs and device.effective_policy == execs
    assert device.effective_hash == eff.hash and device.rpo == timedelta(hours=4)
    assert eff.spec["rpo_hours"] == 4
    assert "*.iso" in eff.spec["excludes"] and "~$*" in eff.spec["excludes"]
    # raising the standard policy above it flips the winner
    policies.assign_policy(SYSTEM, small_fleet.policy, small_fleet.group, 5)
    device.refresh_from_db()
    assert device.effective_policy == small_fleet.policy


def test_saving_a_policy_rolls_out_apply_policy_commands(
    small_fleet, django_capture_on_commit_callbacks
):
    spec = specs.default_spec()
    spec["rpo_hours"] = 48
    with django_capture_on_commit_callbacks() as callbacks:
        policies.update_policy(SYSTEM, small_fleet.policy, "Standard", spec)
    open_cmds = Command.objects.filter(kind=CommandKind.APPLY_POLICY, state=CommandState.PENDING)
    assert open_cmds.count() == 3  # one per device; the older ones are superseded
    assert (
        Command.objects.filter(kind=CommandKind.APPLY_POLICY, state=CommandState.EXPIRED).count()
        == 3
    )
    assert len(callbacks) == 1  # one batched delivery task
    new_hash = Device.objects.get(pk=small_fleet.devices[0].pk).effective_hash
    assert all(c.payload["hash"] == new_hash for c in open_cmds)


def test_rollout_progress_counts_acknowledgements(small_fleet):
    d0, d1, _ = small_fleet.devices
    jobs.record_policy_applied(d0.pk, d0.effective_hash)
    jobs.record_heartbeat(d1.pk, applied_hash="an-old-hash")
    [row] = policies.rollout_progress(small_fleet.policy)
    assert (row["targeted"], row["acknowledged"], row["percent"]) == (3, 1, 33)
    assert Command.objects.get(device=d0, kind="apply_policy").state == CommandState.DONE


def test_unassigning_clears_the_effective_policy(small_fleet):
    assignment = small_fleet.policy.assignments.get()
    policies.unassign_policy(SYSTEM, assignment)
    device = Device.objects.get(pk=small_fleet.devices[0].pk)
    assert device.effective_policy is None and device.effective_hash == ""
    with pytest.raises(ValidationError):
        policies.assign_policy(SYSTEM, small_fleet.policy, small_fleet.group, 0)


def test_delete_policy_requires_no_assignment(small_fleet):
    with pytest.raises(ValidationError):
        policies.delete_policy(SYSTEM, small_fleet.policy)
    policies.unassign_policy(SYSTEM, small_fleet.policy.assignments.get())
    policies.delete_policy(SYSTEM, small_fleet.policy)
    assert not policies.Policy.objects.exists()


# --- enrollment ---------------------------------------------------------------------------


def test_enrollment_consumes_uses_and_joins_the_tokens_group():
    group = fleet.create_group(SYSTEM, "Laptops")
    token, plaintext = fleet.create_enrollment_token(SYSTEM, "x", group, max_uses=1)
    device = fleet.enroll_device(plaintext, hostname="pc", os="macos", cert_fingerprint="ab")
    assert list(device.groups.all()) == [group] and device.enrollment_token == token
    with pytest.raises(fleet.EnrollmentError, match="used up"):
        fleet.enroll_device(plaintext, hostname="pc2", os="macos")
    with pytest.raises(fleet.EnrollmentError, match="unknown"):
        fleet.enroll_device("cet_nope", hostname="pc3", os="macos")


def test_revoked_or_expired_tokens_are_refused():
    token, plaintext = fleet.create_enrollment_token(SYSTEM, "x", max_uses=5)
    fleet.revoke_enrollment_token(SYSTEM, token)
    with pytest.raises(fleet.EnrollmentError, match="revoked"):
        fleet.enroll_device(plaintext, hostname="pc", os="linux")
    token2, plaintext2 = fleet.create_enrollment_token(SYSTEM, "y", max_uses=5)
    token2.expires_at = timezone.now() - timedelta(seconds=1)
    token2.save()
    with pytest.raises(fleet.EnrollmentError, match="expired"):
        fleet.enroll_device(plaintext2, hostname="pc", os="linux")


def test_token_validation_errors():
    with pytest.raises(ValidationError) as exc:
        fleet.create_enrollment_token(SYSTEM, "", max_uses=0)
    assert set(exc.value.message_dict) == {"name", "max_uses"}


# --- commands ------------------------------------------------------------------------------


def test_back_up_now_creates_a_durable_command_and_dispatches_after_commit(
    small_fleet, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr("console.jobs.tasks.deliver_command.delay", lambda cid: sent.append(cid))
    device = small_fleet.devices[0]
    with django_capture_on_commit_callbacks(execute=True):
        command = jobs.request_backup(Actor(via="api"), device)
    assert command.state == CommandState.PENDING and command.expires_at > timezone.now()
    assert sent == [str(command.pk)]
    # the gateway's transport, registered at start-up: no stream open here
    assert dispatch.deliver(str(command.pk)) == "offline"
    assert AuditEvent.objects.filter(action="device.backup", target_id=str(device.pk)).exists()


def test_restore_needs_an_existing_snapshot(small_fleet):
    device = small_fleet.devices[0]
    with pytest.raises(ValidationError):
        jobs.request_restore(SYSTEM, device, "nope")
    jobs.record_job_result(device.pk, "run-1", ok=True, snapshot_id="snap1")
    cmd = jobs.request_restore(
        SYSTEM, device, "snap1", paths=["C:/Users/a/x.docx", ""], target="D:/r"
    )
    assert cmd.payload == {
        "snapshot_id": "snap1",
        "paths": ["C:/Users/a/x.docx"],
        "target": "D:/r",
        "overwrite": False,
    }


def test_command_states_only_move_forward(small_fleet):
    cmd = jobs.request_backup(SYSTEM, small_fleet.devices[0])
    assert jobs.mark_command_sent(cmd.pk)
    assert jobs.mark_command_acknowledged(cmd.pk)
    assert not jobs.mark_command_sent(cmd.pk)  # no way back
    assert jobs.mark_command_finished(cmd.pk, ok=True)
    assert not jobs.mark_command_finished(cmd.pk, ok=False, error="late")
    cmd.refresh_from_db()
    assert cmd.state == CommandState.DONE and cmd.attempts == 1


def test_expiry_and_cancel(small_fleet):
    device = small_fleet.devices[0]
    old = jobs.request_backup(SYSTEM, device)
    Command.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert jobs.expire_commands() >= 1
    old.refresh_from_db()
    assert old.state == CommandState.EXPIRED
    pending = jobs.request_verify(SYSTEM, device)
    jobs.cancel_command(SYSTEM, pending)
    pending.refresh_from_db()
    assert pending.state == CommandState.EXPIRED and "cancelled" in pending.error
    sent = jobs.request_backup(SYSTEM, device)
    jobs.mark_command_sent(sent.pk)
    cancel = jobs.cancel_command(SYSTEM, sent)
    assert cancel.kind == CommandKind.CANCEL and cancel.payload == {"command": str(sent.pk)}
    with pytest.raises(ValidationError):
        jobs.cancel_command(SYSTEM, old)


def test_revoked_device_gets_no_commands(small_fleet):
    device = small_fleet.devices[0]
    pending = jobs.request_backup(SYSTEM, device)
    fleet.revoke_device(SYSTEM, device, "stolen")
    pending.refresh_from_db()
    assert pending.state == CommandState.EXPIRED
    with pytest.raises(PermissionDenied):
        jobs.request_backup(SYSTEM, device)


# --- reports from agents ------------------------------------------------------------------------


def test_job_result_is_idempotent_and_updates_the_device(small_fleet):
    device = small_fleet.devices[0]
    cmd = jobs.request_backup(SYSTEM, device)
    jobs.record_job_started(device.pk, "k-1", command_id=cmd.pk)
    assert jobs.record_job_progress(device.pk, "k-1", progress=0.5, detail={"files": 10})
    assert not jobs.record_job_progress(device.pk, "k-1", progress=0.2)  # stale
    warnings = [{"path": "{Documents}/a.xlsx", "message": "changed while read"}]
    stats = {"bytes_added": 1000, "files_processed": 7, "repository_bytes": 5000}
    for _ in range(2):  # replayed report
        run = jobs.record_job_result(
            device.pk, "k-1", ok=True, snapshot_id="s-1", stats=stats, warnings=warnings
        )
    assert JobRun.objects.count() == 1 and run.warnings_count == 1 and run.bytes_added == 1000
    device.refresh_from_db()
    assert device.status == "protected" and not device.failing and device.storage_bytes == 5000
    assert Snapshot.objects.filter(device=device, snapshot_id="s-1").count() == 1
    cmd.refresh_from_db()
    assert cmd.state == CommandState.DONE
    assert DailyJobStats.objects.get().succeeded == 1 and DailyJobStats.objects.get().warnings == 1


def test_failures_mark_the_device_failing(small_fleet):
    device = small_fleet.devices[0]
    jobs.record_job_result(device.pk, "a", ok=True, snapshot_id="s")
    for key in ("b", "c"):
        jobs.record_job_result(device.pk, key, ok=False, error="Storage unreachable")
    device.refresh_from_db()
    assert device.failing and device.consecutive_failures == 2
    assert device.last_error == "Storage unreachable" and device.status == "protected"
    assert overview()["counts"]["failing"] == 1
    assert DailyJobStats.objects.get().failed == 2


def test_a_late_old_report_does_not_rewind_the_device(small_fleet):
    device = small_fleet.devices[0]
    now = timezone.now()
    jobs.record_job_result(device.pk, "new", ok=True, snapshot_id="n", finished_at=now)
    jobs.record_job_result(
        device.pk, "old", ok=False, error="x", finished_at=now - timedelta(hours=3)
    )
    device.refresh_from_db()
    assert not device.failing and device.last_backup_at == now


def test_heartbeat_moves_last_seen_forward_only(small_fleet):
    device = small_fleet.devices[0]
    now = timezone.now()
    assert jobs.record_heartbeat(device.pk, at=now, agent_version="1.2.3")
    assert not jobs.record_heartbeat(device.pk, at=now - timedelta(minutes=5))
    device.refresh_from_db()
    assert device.last_seen_at == now and device.agent_version == "1.2.3"


def test_report_keys_are_remembered():
    assert jobs.record_report_once("hb:1") and not jobs.record_report_once("hb:1")


# --- queries ------------------------------------------------------------------------------------


def test_device_filter_by_status_group_os_policy_and_search(small_fleet):
    macs = enroll(small_fleet.token_plaintext, 2, prefix="mac", os="macos")
    jobs.record_job_result(macs[0].pk, "m", ok=True, snapshot_id="s")

    def hosts(**params):
        return [d.hostname for d in device_filter(params).qs]

    assert hosts(os="macos") == ["mac-000", "mac-001"]
    assert hosts(status="protected") == ["mac-000"]
    assert "mac-000" not in hosts(status="unprotected")
    assert hosts(q="MAC-001") == ["mac-001"]
    assert len(hosts(group=small_fleet.group.pk)) == 5
    assert hosts(group=small_fleet.other_group.pk) == []
    assert len(hosts(policy=small_fleet.policy.pk)) == 5
    assert hosts(sort="-hostname")[0] == "pc-002"
    refused = device_filter({"status": "bogus", "sort": "bogus", "os": "macos"})
    assert set(refused.errors) == {"status", "sort"}  # said, by field ...
    assert [d.hostname for d in refused.qs] == ["mac-000", "mac-001"]  # ... the rest applies
    fleet.revoke_device(SYSTEM, macs[1])
    assert "mac-001" not in hosts() and hosts(status="revoked") == ["mac-001"]


def test_overview_counts(small_fleet):
    jobs.record_job_result(small_fleet.devices[0].pk, "x", ok=True, snapshot_id="s")
    data = overview()
    c = data["counts"]
    assert (c["total"], c["protected"], c["unprotected"], c["at_risk"]) == (3, 1, 2, 0)
    assert len(data["chart"]) == 30 and data["chart"][-1]["succeeded"] == 1
    assert data["rollout"][0]["targeted"] == 3


# --- storage and users -----------------------------------------------------------------------------


def test_storage_target_audit_never_contains_secrets():
    target = storage.save_storage_target(
        SYSTEM,
        {
            "name": "minio",
            "endpoint": "m:9000",
            "bucket": "cairn",
            "access_key": "AK",
            "secret_key": "SK-123",
        },
    )
    storage.save_storage_target(
        SYSTEM, {"name": "minio", "endpoint": "m:9000", "bucket": "cairn2"}, target
    )
    target.refresh_from_db()
    assert target.secret_key == "SK-123" and target.bucket == "cairn2"  # kept when left empty
    for event in AuditEvent.objects.filter(action__startswith="storage."):
        assert "SK-123" not in str(event.before) + str(event.after)
    with pytest.raises(ValidationError) as exc:
        storage.save_storage_target(SYSTEM, {"name": "", "endpoint": "", "bucket": "Bad_Bucket"})
    assert set(exc.value.message_dict) == {"name", "endpoint", "bucket"}


def test_users_get_roles_and_cannot_demote_themselves(users):
    from console.accounts.roles import role_of
    from console.accounts.services import save_user

    admin = Actor(user=users["admin"])
    new = save_user(admin, "olivia", "Operator", password="Strong-pass-987")
    assert role_of(new) == "Operator"
    with pytest.raises(ValidationError):
        save_user(admin, "admin", "Auditor", user=users["admin"])
    with pytest.raises(ValidationError):
        save_user(admin, "weak", "Auditor", password="123")


def test_bulk_action_service_checks_the_role_and_skips_revoked_devices(users, small_fleet):
    from console.jobs.bulk import run_bulk_action

    ids = [str(d.pk) for d in small_fleet.devices] + ["not-a-uuid"]
    fleet.revoke_device(SYSTEM, small_fleet.devices[2])
    with pytest.raises(PermissionDenied):
        run_bulk_action(Actor(user=users["auditor"]), "backup", ids)
    with pytest.raises(ValidationError) as refused:
        run_bulk_action(Actor(user=users["admin"]), "reboot", ids)
    assert refused.value.message_dict == {"action": ["Choose an action."]}
    with pytest.raises(ValidationError):
        run_bulk_action(Actor(user=users["admin"]), "add_to_group", ids, group=None)

    done = run_bulk_action(Actor(user=users["operator"]), "backup", ids)
    assert len(done.devices) == len(done.commands) == 2  # the revoked one left out
    done = run_bulk_action(
        Actor(user=users["admin"]), "add_to_group", ids, group=str(small_fleet.other_group.pk)
    )
    assert done.group == small_fleet.other_group
    assert small_fleet.other_group.devices.count() == 2
