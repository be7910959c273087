"""manage.py init_installation against moto's S3: what a first run
prepares, that a second changes nothing, and the clear refusals (a weak
first-Admin password, Object Lock asked of a bucket created without it)."""

from __future__ import annotations

import io
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from console.accounts.roles import ADMIN, role_of
from console.audit.models import AuditEvent


@pytest.fixture
def install(db, settings, s3_server, tmp_path, monkeypatch):
    settings.S3_ENDPOINT = s3_server.endpoint
    settings.S3_BUCKET = f"t-{uuid.uuid4().hex[:12]}"
    settings.S3_ACCESS_KEY = s3_server.access_key
    settings.S3_SECRET_KEY = s3_server.secret_key
    settings.S3_OBJECT_LOCK = False
    settings.ORG_KEY_FILE = tmp_path / "keys" / "org.key"
    settings.PKI_DIR = tmp_path / "pki"
    monkeypatch.setenv("CAIRN_ADMIN_USERNAME", "first")
    monkeypatch.setenv("CAIRN_ADMIN_PASSWORD", "a-long-enough-pass-phrase-9")
    monkeypatch.setenv("S3_RETAIN_DAYS", "21")

    def run(*args) -> str:
        out = io.StringIO()
        call_command("init_installation", *args, stdout=out)
        return out.getvalue()

    return run


def test_first_run_prepares_everything_and_a_second_changes_nothing(install, settings, s3_server):
    out = install()
    assert "keys: organisation key" in out and "created" in out, out
    assert (
        f"bucket: {settings.S3_BUCKET} created, versioning Enabled, old versions kept 21 days"
        in out
    )
    assert "first admin: first created (role Admin)" in out
    assert settings.ORG_KEY_FILE.stat().st_mode & 0o777 == 0o600
    client = s3_server.client()
    assert client.get_bucket_versioning(settings.S3_BUCKET).status == "Enabled"
    (rule,) = client.get_bucket_lifecycle(settings.S3_BUCKET).rules
    assert rule.noncurrent_version_expiration.noncurrent_days == 21
    user = get_user_model().objects.get(username="first")
    assert role_of(user) == ADMIN and not user.is_superuser
    assert AuditEvent.objects.filter(action="user.create", target_repr__contains="first").exists()
    assert AuditEvent.objects.filter(action="keys.init").count() == 1
    key = settings.ORG_KEY_FILE.read_bytes()

    again = install()
    assert "present, never replaced" in again and "an Admin exists" in again, again
    assert f"bucket: {settings.S3_BUCKET} present, versioning Enabled" in again
    assert settings.ORG_KEY_FILE.read_bytes() == key
    assert AuditEvent.objects.filter(action="keys.init").count() == 1
    assert get_user_model().objects.count() == 1


def test_weak_first_admin_password_is_refused_with_the_reasons(install, monkeypatch):
    monkeypatch.setenv("CAIRN_ADMIN_PASSWORD", "12345")
    with pytest.raises(CommandError, match=r"first admin: .*too short"):
        install()
    assert not get_user_model().objects.exists()


def test_without_admin_settings_it_says_how_to_create_one(install, monkeypatch):
    monkeypatch.delenv("CAIRN_ADMIN_USERNAME")
    out = install()
    assert "first admin: none yet: run `manage.py init_installation --admin NAME`" in out


def test_object_lock_bucket_and_refusal_for_an_existing_bucket_without_it(
    install, settings, s3_server
):
    settings.S3_OBJECT_LOCK = True
    out = install("--no-bucket")
    assert "bucket: skipped" in out
    out = install()
    assert "Object Lock on" in out, out
    config = s3_server.client().get_object_lock_config(settings.S3_BUCKET)
    assert (config.mode, config.duration) == ("GOVERNANCE", 21)

    settings.S3_BUCKET = f"t-{uuid.uuid4().hex[:12]}"
    s3_server.client().make_bucket(settings.S3_BUCKET)
    with pytest.raises(CommandError, match="exists without Object Lock"):
        install()


def test_local_storage_has_no_bucket_to_prepare(install, settings):
    settings.S3_ENDPOINT = ""
    with pytest.raises(CommandError, match="bucket: storage is a local directory"):
        install()
