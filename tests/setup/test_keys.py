"""Issue 10, item 5: production never creates the organisation key or the
console CA as a side effect; ``manage.py init_keys`` creates them once,
refuses to replace them, and leaves an audit event."""

from __future__ import annotations

import stat

import pytest
from django.conf import settings as django_settings

from console.audit.models import AuditEvent
from console.core import keys, pki
from tests.conftest import _database_url_for_subprocess
from tests.setup.test_settings import PRODUCTION_ENV, run_manage


def _paths(tmp_path) -> dict:
    return {
        "CAIRN_ORG_KEY_FILE": str(tmp_path / "keys" / "org.key"),
        "CAIRN_PKI_DIR": str(tmp_path / "pki"),
    }


def test_production_check_refuses_to_start_without_keys_and_creates_nothing(tmp_path):
    env = {**PRODUCTION_ENV, **_paths(tmp_path)}
    result = run_manage(env, "check", "--deploy")
    assert result.returncode != 0
    out = result.stderr + result.stdout
    assert "cairn.E001" in out and "manage.py init_keys" in out
    assert "organisation key" in out and "console CA" in out
    assert not (tmp_path / "keys" / "org.key").exists()
    assert not (tmp_path / "pki" / "ca.crt").exists() and not (tmp_path / "pki" / "ca.key").exists()


@pytest.mark.django_db
def test_production_never_creates_keys_on_use(settings, tmp_path, client, django_user_model):
    settings.PRODUCTION = True
    settings.ORG_KEY_FILE = tmp_path / "keys" / "org.key"
    settings.PKI_DIR = tmp_path / "pki"
    with pytest.raises(keys.KeysMissing, match="init_keys"):
        keys.org_key()  # enrollment and maintenance go through it
    with pytest.raises(pki.CAMissing, match="init_keys"):
        pki.ensure_ca()  # the gateway loads its CA this way at start
    with pytest.raises(pki.CAMissing):
        pki.ensure_server_certificate(["gw.example.internal"])
    assert not settings.ORG_KEY_FILE.exists()
    assert not list((tmp_path / "pki").glob("*.key")) and not list((tmp_path / "pki").glob("*.crt"))
    # not ready for the load balancer; signed-in users see why
    assert client.get("/healthz").status_code == 503
    client.force_login(django_user_model.objects.create_user("ops"))
    detail = client.get("/healthz").json()["checks"]["keys"]
    assert detail["ok"] is False and "init_keys" in detail["detail"]


def test_development_still_creates_keys_on_first_use(settings, tmp_path):
    settings.PRODUCTION = False
    settings.ORG_KEY_FILE = tmp_path / "org.key"
    key = keys.org_key()
    assert len(key) == 32 and keys.org_key() == key
    assert stat.S_IMODE(settings.ORG_KEY_FILE.stat().st_mode) == 0o600
    ca = pki.ensure_ca(tmp_path / "pki")
    assert pki.ensure_ca(tmp_path / "pki").fingerprint == ca.fingerprint


@pytest.mark.django_db(transaction=True)
def test_init_keys_creates_once_audits_and_never_replaces(tmp_path):
    if django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # production refuses SQLite by design; `make test` runs this on PostgreSQL
        pytest.skip("CAIRN_ENV=production needs PostgreSQL (the PostgreSQL run covers it)")
    env = {
        **PRODUCTION_ENV,
        **_paths(tmp_path),
        "DATABASE_URL": _database_url_for_subprocess(),
    }
    org_path, ca_cert = tmp_path / "keys" / "org.key", tmp_path / "pki" / "ca.crt"
    result = run_manage(env, "init_keys", "--org", "Acme")
    assert result.returncode == 0, result.stderr
    assert str(org_path) in result.stdout and str(ca_cert) in result.stdout
    assert stat.S_IMODE(org_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pki" / "ca.key").stat().st_mode) == 0o600
    org_bytes, ca_bytes = org_path.read_bytes(), ca_cert.read_bytes()
    fingerprint = keys.org_key_fingerprint(org_bytes)
    assert fingerprint in result.stdout and pki.fingerprint(ca_bytes) in result.stdout
    event = AuditEvent.objects.get(action="keys.init")
    assert event.after["organisation key"] == {
        "path": str(org_path),
        "fingerprint": fingerprint,
        "created": True,
    }
    assert event.after["console CA"]["fingerprint"] == pki.fingerprint(ca_bytes)
    assert org_bytes.hex() not in str(event.after)  # paths and fingerprints, never the key

    # the deployment is now ready
    check = run_manage({**PRODUCTION_ENV, **_paths(tmp_path)}, "check", "--deploy")
    assert check.returncode == 0, check.stderr + check.stdout

    # a second run replaces nothing
    again = run_manage(env, "init_keys")
    assert again.returncode != 0 and "already exist" in again.stderr
    assert org_path.read_bytes() == org_bytes and ca_cert.read_bytes() == ca_bytes
    assert AuditEvent.objects.filter(action="keys.init").count() == 1

    # with only the CA lost, it makes a CA and keeps the organisation key
    ca_cert.unlink()
    (tmp_path / "pki" / "ca.key").unlink()
    partial = run_manage(env, "init_keys")
    assert partial.returncode == 0, partial.stderr
    assert org_path.read_bytes() == org_bytes
    assert "already there, left as it was" in partial.stdout


def test_production_gateway_refuses_to_start_without_keys(tmp_path):
    env = {**PRODUCTION_ENV, **_paths(tmp_path), "CAIRN_GATEWAY_BIND": "127.0.0.1:0"}
    result = run_manage(env, "run_gateway")
    assert result.returncode != 0
    assert "init_keys" in result.stderr
    assert not (tmp_path / "pki" / "ca.key").exists()
    assert not (tmp_path / "keys" / "org.key").exists()
