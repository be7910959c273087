"""12-factor settings: embedded defaults for development, strict production."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from console.env import env_bool, env_int, env_list

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "CAIRN_ENV": "production",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "DATABASE_URL": "postgres://cairn@db.example.internal:5432/cairn",
    "REDIS_URL": "redis://redis.example.internal:6379/0",
    "S3_ENDPOINT": "https://minio.example.internal:9000",
    "ALLOWED_HOSTS": "cairn.example.com",
}


def run_manage(env_overrides: dict, *args: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        # a clean slate: nothing of the test process's own configuration leaks in
        if not k.startswith(
            ("CAIRN_", "DATABASE_URL", "REDIS_URL", "S3_", "DJANGO_ALLOW_ASYNC", "DEBUG")
        )
    }
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_production(tmp_path):
    # the keys exist (manage.py init_keys made them; tests/setup/test_keys.py)
    from console.core import pki

    (tmp_path / "org.key").write_bytes(os.urandom(32))
    pki.create_ca(tmp_path / "pki")
    env = {
        **PRODUCTION_ENV,
        "CAIRN_ORG_KEY_FILE": str(tmp_path / "org.key"),
        "CAIRN_PKI_DIR": str(tmp_path / "pki"),
    }
    result = run_manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "override, message",
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"SECRET_KEY": "cairn-development-only-secret-key-never-use-in-production"}, "SECRET_KEY"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"REDIS_URL": ""}, "REDIS_URL"),
        ({"S3_ENDPOINT": ""}, "S3_ENDPOINT"),
        ({"SECRET_KEY": "ab" * 30}, "SECRET_KEY"),
        ({"CAIRN_ENV": "staging"}, "CAIRN_ENV"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"DEBUG": "1"}, "DEBUG"),
        ({"DEBUG": "true"}, "DEBUG"),
    ],
)
def test_production_refuses_development_values(override, message):
    env = {**PRODUCTION_ENV, **override}
    env = {k: v for k, v in env.items() if v != ""}
    result = run_manage(env, "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_embedded_defaults_need_no_environment(tmp_path):
    result = run_manage(
        {"CAIRN_VAR_DIR": str(tmp_path)},
        "shell",
        "-c",
        (
            "from django.conf import settings as s;"
            "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.LOCAL_STORAGE_DIR, s.DEBUG)"
        ),
    )
    assert result.returncode == 0, result.stderr
    engine, broker, storage, debug = result.stdout.strip().splitlines()[-1].split()
    assert engine.endswith("sqlite3") and broker == "filesystem://"
    assert storage == str(tmp_path / "storage") and debug == "True"


def test_env_helpers_parse_and_reject(monkeypatch):
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env_bool("X_BOOL", False) is True
    assert env_int("X_INT", 0) == 42
    assert env_list("X_LIST", []) == ["a", "b", "c"]
    assert env_bool("X_MISSING", True) is True
    monkeypatch.setenv("X_INT", "forty")
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        env_int("X_INT", 0)


def test_demo_app_is_not_installed_in_production(tmp_path):
    """`make demo` and seed_demo live in console/demo, which production settings
    leave out: its commands do not exist there, and they do elsewhere."""
    production = run_manage(PRODUCTION_ENV, "help", "--commands")
    assert production.returncode == 0, production.stderr
    commands = production.stdout.split()
    assert "seed_demo" not in commands and "demo" not in commands
    assert "run_gateway" in commands and "init_keys" in commands
    embedded = run_manage({"CAIRN_VAR_DIR": str(tmp_path)}, "help", "--commands")
    assert embedded.returncode == 0, embedded.stderr
    assert {"seed_demo", "demo"} <= set(embedded.stdout.split())
