"""Model invariants: immutable revisions, append-only audit, hashed tokens,
encrypted credentials, protection status from the denormalised deadlines."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from console.audit.models import AuditEvent
from console.audit.services import SYSTEM, record
from console.fleet import services as fleet
from console.fleet.models import Device, Protection
from console.policies.models import PolicyRevision
from console.storage.models import StorageTarget

pytestmark = pytest.mark.django_db


def test_policy_revisions_are_immutable(small_fleet):
    rev = small_fleet.policy.current_revision
    rev.comment = "changed"
    with pytest.raises(ValidationError):
        rev.save()
    with pytest.raises(ValidationError):
        rev.delete()
    assert PolicyRevision.objects.get(pk=rev.pk).comment != "changed"


def test_audit_log_is_append_only():
    event = record(SYSTEM, "test.thing", target_type="x", target_id="1", after={"a": 1})
    event.action = "tampered"
    with pytest.raises(PermissionDenied):
        event.save()
    with pytest.raises(PermissionDenied):
        event.delete()
    with pytest.raises(PermissionDenied):
        AuditEvent.objects.all().delete()
    with pytest.raises(PermissionDenied):
        AuditEvent.objects.update(action="x")
    assert AuditEvent.objects.get(pk=event.pk).action == "test.thing"


def test_enrollment_token_is_stored_hashed():
    token, plaintext = fleet.create_enrollment_token(SYSTEM, "laptops", max_uses=2)
    assert plaintext not in token.token_hash and plaintext.startswith(token.prefix)
    assert token.token_hash == fleet.hash_token(plaintext)
    assert not any(plaintext in str(v) for v in AuditEvent.objects.values_list("after", flat=True))


def test_storage_credentials_are_encrypted_at_rest():
    target = StorageTarget(name="minio", endpoint="minio:9000", bucket="cairn")
    target.access_key, target.secret_key = "AKIDEXAMPLE", "s3cr3t-v4lue"
    target.save()
    raw = StorageTarget.objects.values("access_key_encrypted", "secret_key_encrypted").get()
    assert "s3cr3t-v4lue" not in raw["secret_key_encrypted"]
    assert "AKIDEXAMPLE" not in raw["access_key_encrypted"]
    again = StorageTarget.objects.get(pk=target.pk)
    assert (again.access_key, again.secret_key) == ("AKIDEXAMPLE", "s3cr3t-v4lue")


def test_secrets_do_not_decrypt_under_another_key(settings):
    target = StorageTarget(name="m", endpoint="m:9000", bucket="cairn")
    target.secret_key = "value"
    settings.CAIRN_SECRETS_KEY = "a-different-key"
    with pytest.raises(ValueError):
        _ = target.secret_key


def test_protection_follows_the_deadlines():
    now = timezone.now()
    d = Device(hostname="x", os="linux")
    assert d.protection(now) == Protection.UNPROTECTED
    d.protected_until, d.at_risk_until = now + timedelta(hours=1), now + timedelta(hours=49)
    assert d.protection(now) == Protection.PROTECTED
    assert d.protection(now + timedelta(hours=2)) == Protection.AT_RISK
    assert d.protection(now + timedelta(hours=50)) == Protection.UNPROTECTED
    d.revoked = True
    assert d.protection(now) == Protection.REVOKED


def test_sign_ins_are_audited(client, users):
    from tests.console.conftest import PASSWORD

    client.post("/login/", {"username": "auditor", "password": "wrong"})
    client.post("/login/", {"username": "auditor", "password": PASSWORD})
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "target_repr"))
    assert actions[-2:] == [("auth.login_failed", "auditor"), ("auth.login", "auditor")]
