"""Disaster recovery of the console (issue 12), on a RUNNING installation of
real processes: console (runserver + API), gateway, Celery worker, moto's S3
server and an agent daemon, on a PostgreSQL database of the test's own.

``backup_console`` writes the sealed bundle; then the database is dropped and
the state directory (CA, organisation key) deleted under the running agent;
``restore_console`` brings a fresh, empty database and state directory back;
the services restart on the same addresses and the agent reconnects with its
old certificate and backs up incrementally (only the changed file read and
stored). Then the recovery kit is followed as printed: the sealed block taken
from the PDF's text (pdftotext), unwrapped with ``cairn-agent unwrap-key`` and
the passphrase, and ``cairn-agent restore`` with CAIRN_KEY_FILE gives the
device's files back byte-identical, without the console.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.test_control_plane import Api, _files
from tests.gateway.harness import ROOT, Agent, Gateway, Proc, enroll_agent, wait_for
from tests.support import celery_worker_argv, free_port, port_open

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PASSPHRASE = "correct horse battery staple 12"
PG = ["-h", "127.0.0.1", "-U", "postgres"]


def _psql(sql: str) -> None:
    subprocess.run(["psql", *PG, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)


def _manage(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert res.returncode == 0, f"manage.py {' '.join(args)}:\n{res.stdout}\n{res.stderr}"
    return res


MAKE_ADMIN = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
u = get_user_model().objects.create_superuser("dr-admin", "dr@example.org", "x-dr-pw-1")
print(Token.objects.create(user=u).key)
"""


@pytest.fixture
def database():
    name = f"cairn_dr_{uuid.uuid4().hex[:10]}"
    _psql(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Installation:
    """web + gateway + worker on fixed ports (a restart keeps the addresses)."""

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs = env, logs
        self.web_port, self.gw_port, self.enroll_port = free_port(), free_port(), free_port()
        self.procs: list[Proc] = []
        self.gateway: Gateway | None = None

    def start(self) -> None:
        web = Proc(
            "web",
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{self.web_port}"],
            self.env,
            self.logs / "web.log",
        ).start()
        worker = Proc(
            "worker",
            celery_worker_argv(self.env["CELERY_QUEUE"], f"dr-{uuid.uuid4().hex[:6]}"),
            self.env,
            self.logs / "worker.log",
        ).start()
        self.gateway = Gateway(
            self.env, self.logs / "gateway.log", port=self.gw_port, eport=self.enroll_port
        ).start()
        self.procs = [web, worker, self.gateway]
        wait_for(lambda: port_open("127.0.0.1", self.web_port) or not web.alive(), 60, "runserver")
        assert web.alive(), web.tail()

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs = []

    def diag(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(1500)}" for p in self.procs)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_console_destroyed_restored_agent_reconnects_and_kit_restores(
    database, s3_server, s3_bucket, tmp_path
):
    state = tmp_path / "state"
    state.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "CAIRN_REDIS_PREFIX": f"dr-{uuid.uuid4().hex[:8]}:",
        "CELERY_QUEUE": f"cairn-dr-{uuid.uuid4().hex[:8]}",
        "CAIRN_VAR_DIR": str(state),
        "PYTHONPATH": str(ROOT),
        "S3_ENDPOINT": s3_server.endpoint,
        "S3_BUCKET": s3_bucket,
        "S3_ACCESS_KEY": s3_server.access_key,
        "S3_SECRET_KEY": s3_server.secret_key,
        "CAIRN_ORG": "drorg",
        "CAIRN_HEARTBEAT_SECONDS": "5",
        "CAIRN_GATEWAY_SWEEP_SECONDS": "2",
        "CAIRN_HEARTBEAT_FLUSH_SECONDS": "1",
        "CAIRN_RECOVERY_PASSPHRASE": PASSPHRASE,
    }
    _manage(env, "migrate", "-v0")
    token = _manage(env, "shell", "-c", MAKE_ADMIN).stdout.strip().splitlines()[-1]
    inst = Installation(env, tmp_path)
    inst.start()
    agent = None
    try:
        api = Api(f"http://127.0.0.1:{inst.web_port}/api/v1", token)
        group = api.post("/groups/", {"name": "dr-laptops"})
        tok = api.post("/enrollment-tokens/", {"name": "dr", "group": group["id"], "max_uses": 1})
        user_home = tmp_path / "user"
        documents = user_home / "Documents"
        (documents / "big").mkdir(parents=True)
        (documents / "notes.txt").write_text("before the disaster\n" * 50)
        (documents / "big" / "data.bin").write_bytes(os.urandom(3_000_000))
        for f in (documents / "notes.txt", documents / "big" / "data.bin"):
            os.utime(f, (time.time() - 3600, time.time() - 3600))  # not "racily" new
        home = tmp_path / "agent"
        device_id = enroll_agent(home, inst.gateway, tok["token"], {"HOME": str(user_home)})
        agent = Agent(home, tmp_path / "agent.log", {"HOME": str(user_home)}).start()
        spec = {
            "sources": {
                "linux": ["{Documents}"],
                "windows": ["{Documents}"],
                "macos": ["{Documents}"],
            },
            "schedule": {"every_hours": 24, "catch_up": True},
            "limits": {"pause_on_battery": False, "pause_on_metered": False},
        }
        policy = api.post("/policies/", {"name": "dr-policy", "spec": spec})
        api.post(f"/policies/{policy['id']}/assign/", {"group": group["id"], "precedence": 10})

        def backups(trigger):
            runs = api.results(f"/jobs/?device={device_id}")
            return [
                j
                for j in runs
                if j["kind"] == "backup" and j["state"] == "succeeded" and j["trigger"] == trigger
            ]

        wait_for(
            lambda: backups("schedule"), 90, f"the first backup\n{inst.diag()}\n{agent.tail()}"
        )
        cert_before = {
            p.name: _sha(p) for p in sorted(home.glob("*.crt")) + sorted(home.glob("*.pem"))
        }
        snapshots_before = api.results(f"/snapshots/?device={device_id}")
        assert snapshots_before

        # --- the console's bundle, then the disaster -----------------------------------
        bundle = tmp_path / "console.cairnbak"
        out = _manage(env, "backup_console", "--output", str(bundle)).stdout
        assert "console bundle written" in out
        raw = bundle.read_bytes()
        org_key = (state / "keys" / "org.key").read_bytes()
        assert org_key not in raw and org_key.hex().encode() not in raw  # never in the clear
        assert b"BEGIN CERTIFICATE" not in raw and b"PGDMP" not in raw
        # a bundle in the storage target too (what the schedule does)
        assert "_console/console-" in _manage(env, "backup_console").stdout

        inst.stop()
        _psql(f"DROP DATABASE {database} WITH (FORCE)")
        shutil.rmtree(state)
        _psql(f"CREATE DATABASE {database}")
        state.mkdir()

        # wrong passphrase: refused, nothing written
        bad = _manage(
            {**env, "CAIRN_RECOVERY_PASSPHRASE": "not the passphrase!"},
            "restore_console",
            str(bundle),
            check=False,
        )
        assert bad.returncode != 0 and "wrong passphrase" in bad.stderr
        assert not (state / "keys").exists()
        out = _manage(env, "restore_console", str(bundle)).stdout
        assert "restored the console" in out
        # a second restore over the now non-empty installation is refused
        again = _manage(env, "restore_console", str(bundle), check=False)
        assert again.returncode != 0 and "not empty" in again.stderr

        # --- services back on the same addresses: the agent reconnects -------------------
        inst.start()
        wait_for(lambda: agent.status().get("connection") == "connected", 90, "agent connected")
        wait_for(
            lambda: (api.get(f"/devices/{device_id}/")["connection"] or {}).get("online"),
            60,
            f"the device online again\n{inst.diag()}\n{agent.tail()}",
        )
        # the old certificate, never re-enrolled: the restored CA is the same CA
        assert {n: _sha(home / n) for n in ("device.crt", "ca.crt")} == cert_before
        (documents / "notes.txt").write_text("after the restore\n" * 50)
        api.post(f"/devices/{device_id}/backup/")
        wait_for(
            lambda: backups("manual"),
            90,
            f"a backup after the restore\n{inst.diag()}\n{agent.tail()}",
        )
        stats = backups("manual")[0]["stats"]
        assert stats["files_changed"] + stats["files_new"] == 1, stats
        assert stats["files_unchanged"] >= 1 and stats["bytes_added_raw"] < 100_000, stats
        assert len(api.results(f"/snapshots/?device={device_id}")) == len(snapshots_before) + 1
        actions = [e["action"] for e in api.results("/audit-events/?page_size=200")]
        assert actions.count("console.restore") == 1 and "console.backup" in actions, actions

        # --- the recovery kit, followed as printed ---------------------------------------
        kit = tmp_path / "kit.pdf"
        _manage(env, "recovery_kit", "--output", str(kit))
        inst.stop()
        text = tmp_path / "kit.txt"
        subprocess.run(["pdftotext", "-layout", str(kit), str(text)], check=True)
        kit_text = text.read_text()
        fingerprint = kit_text.split("FINGERPRINT:")[1].split()[0]
        repo = f"s3://{s3_bucket}/drorg/{device_id}"
        assert (
            f"s3://{s3_bucket}/drorg/" in kit_text
            and "unwrap-key kit.txt --output org.key" in kit_text
        )
        cli_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "DATABASE_", "CAIRN_"))
        }
        cli_env.update(PYTHONPATH=str(ROOT), HOME=str(tmp_path / "admin-home"))
        unwrap = subprocess.run(
            [sys.executable, "-m", "agent", "unwrap-key", "kit.txt", "--output", "org.key"],
            cwd=tmp_path, env={**cli_env, "CAIRN_RECOVERY_PASSPHRASE": PASSPHRASE},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert unwrap.returncode == 0, unwrap.stderr
        assert fingerprint in unwrap.stdout
        wrong = subprocess.run(
            [sys.executable, "-m", "agent", "unwrap-key", "kit.txt", "--output", "other.key"],
            cwd=tmp_path, env={**cli_env, "CAIRN_RECOVERY_PASSPHRASE": "guessed passphrase"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
        restore_env = {
            **cli_env,
            "CAIRN_S3_ENDPOINT": s3_server.endpoint,
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
            "CAIRN_KEY_FILE": str(tmp_path / "org.key"),
            "CAIRN_REPOSITORY": repo,
        }
        target = tmp_path / "restored"
        res = subprocess.run(
            [sys.executable, "-m", "agent", "restore", "latest", "--target", str(target)],
            cwd=tmp_path, env=restore_env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr + res.stdout
        restored = {k.split("Documents/", 1)[-1]: v for k, v in _files(target).items()}
        assert restored == _files(documents)
    finally:
        if agent is not None:
            agent.stop()
        inst.stop()
