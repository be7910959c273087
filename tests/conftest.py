"""Fixtures that give tests the real thing.

* PostgreSQL when DATABASE_URL names it (CI), SQLite otherwise; each test run
  gets its own test database, so several runs can share one server.
* Redis when REDIS_URL is set; a Celery worker as a real subprocess on a queue
  of its own.
* An S3 endpoint: moto's server mode in its own process on a free loopback
  port, used through the real ``minio`` SDK over HTTP.
* An S3 endpoint that verifies SigV4 signatures (moto verifies none):
  ``@20minutes/s3rver`` under node, pinned in tests/s3sig (``make test`` runs
  ``npm ci`` there), for the tests that prove what a tampered grant gets.

A test that needs a server the machine lacks is skipped with the reason, or
fails under CI=true (tests/support.py: need_service).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import celery_worker_argv, free_port, need_service, port_open, wait_until

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = uuid.uuid4().hex[:8]


# --- database -------------------------------------------------------------------
@pytest.fixture(scope="session")
def django_db_modify_db_settings():
    """A test database of this run's own (PostgreSQL is shared between runs)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        # A file, not Django's in-memory default: processes a test starts
        # (gateway, worker, web) must open the same database.
        name = Path(tempfile.gettempdir()) / f"cairn-test-{RUN_ID}.sqlite3"
    else:
        name = f"test_cairn_{RUN_ID}"
    db.setdefault("TEST", {})["NAME"] = str(name)


# --- S3 (moto server mode) -----------------------------------------------------------
@dataclass(frozen=True)
class S3Server:
    host: str  # "127.0.0.1:PORT"
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}"

    def client(self, access_key: str | None = None, secret_key: str | None = None):
        from minio import Minio

        return Minio(
            self.host,
            access_key=access_key or self.access_key,
            secret_key=secret_key or self.secret_key,
            region=self.region,
            secure=False,
        )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        )
    try:
        wait_until(
            lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 30, what="moto server"
        )
        if proc.poll() is not None:
            pytest.fail(f"moto server exited: {log.read_text()[-2000:]}")
        yield S3Server(host=f"127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh, empty bucket for one test."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3_server.client().make_bucket(name)
    return name


# --- S3 that checks signatures (s3rver under node) ---------------------------------
S3SIG_DIR = ROOT / "tests" / "s3sig"


@pytest.fixture(scope="session")
def s3sig_server(tmp_path_factory):
    """An S3 server that refuses a request whose SigV4 signature (header or
    pre-signed query) does not match, or whose pre-signed URL has expired:
    tests/s3sig/server.js, with a key pair of this run's own. It does not
    honour ``If-None-Match`` on PUT (moto does): see docs/security.md."""
    node = shutil.which("node")
    if node is None or not (S3SIG_DIR / "node_modules" / "@20minutes" / "s3rver").is_dir():
        need_service("node and tests/s3sig/node_modules (make s3sig: npm ci --prefix tests/s3sig)")
    port = free_port()
    base = tmp_path_factory.mktemp("s3sig")
    server = S3Server(
        host=f"127.0.0.1:{port}",
        access_key=f"CAIRN{secrets.token_hex(6).upper()}",
        secret_key=secrets.token_urlsafe(30),
    )
    (base / "data").mkdir()
    log = base / "s3sig.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [node, str(S3SIG_DIR / "server.js"), str(base / "data"), str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "S3SIG_ACCESS_KEY": server.access_key,
                "S3SIG_SECRET_KEY": server.secret_key,
            },
        )
    try:
        wait_until(
            lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 30, what="s3rver"
        )
        if proc.poll() is not None:
            pytest.fail(f"s3rver exited: {log.read_text()[-2000:]}")
        yield server
    finally:
        proc.terminate()
        proc.wait(10)


# --- Redis and Celery -------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        need_service("Redis (set REDIS_URL)")
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        need_service(f"Redis at {url} ({exc})")
    return url


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    """A key prefix of this run's own, for tests sharing one Redis."""
    return f"cairn-test-{RUN_ID}:"


def _database_url_for_subprocess() -> str:
    """The URL of the test database, for processes the test starts."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def service_env(tmp_path, redis_url, redis_prefix, transactional_db) -> dict:
    """Environment for console processes a test starts (worker, gateway, web):
    the test database, Redis with this run's queue and key prefix, and a
    var/ directory of the test's own."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": _database_url_for_subprocess(),
        "REDIS_URL": redis_url,
        "CAIRN_REDIS_PREFIX": redis_prefix,
        "CELERY_QUEUE": f"cairn-test-{RUN_ID}",
        "CAIRN_VAR_DIR": str(tmp_path / "var"),
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def worker_env() -> dict:
    """Extra environment for the Celery worker (a module overrides this
    fixture, e.g. to give the worker the S3 storage its test uses)."""
    return {}


@pytest.fixture
def celery_worker(service_env, worker_env, settings):
    """A real Celery worker subprocess consuming this run's queue from Redis."""
    settings.CELERY_TASK_DEFAULT_QUEUE = service_env["CELERY_QUEUE"]
    from console.celery import app

    app.conf.task_default_queue = service_env["CELERY_QUEUE"]
    app.conf.broker_url = app.conf.result_backend = service_env["REDIS_URL"]
    proc = subprocess.Popen(
        celery_worker_argv(service_env["CELERY_QUEUE"], f"test-{RUN_ID}"),
        cwd=ROOT,
        env={**service_env, **worker_env},
    )
    try:
        wait_until(
            lambda: (
                proc.poll() is not None
                or app.control.ping(
                    timeout=0.5, destination=[f"test-{RUN_ID}@{os.uname().nodename}"]
                )
            ),
            60,
            what="celery worker",
        )
        assert proc.poll() is None, "celery worker exited at start"
        yield app
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
