"""`make prod-check`: the production configuration of deploy/ brought up as
local processes with exactly the commands the compose file (and the systemd
units, test_deploy_files.py) declare, then used by an agent from outside.

* CAIRN_ENV=production; a fresh PostgreSQL database and role of its own; a
  second redis-server with ``--requirepass``; moto's S3 server standing in
  for MinIO; the Cairn services' environment is the compose file's, with
  deploy/.env.example filled in as an admin would.
* Docker's part: service names become loopback ports, the state volume a
  directory, published ports Forwarders on 127.0.0.2 (the "outside"). The
  agent is only ever given 127.0.0.2 addresses: CAIRN_GATEWAY_ADDRESS and
  S3_PUBLIC_ENDPOINT; the services listen on 127.0.0.1 only.
* init runs twice (the second changes nothing); console (gunicorn), gateway,
  worker and beat start; each compose health check passes; `check --deploy`
  is clean; the first Admin from the environment signs in through the API;
  an agent enrolls, backs up, and restores byte-identical files.

Figures (time to a working installation, idle memory of each process) are
printed and written to var/prod-check.json (docs/operations.md quotes them).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import psycopg
import pytest
import redis
import urllib3

from tests.forward import Forwarder
from tests.gateway.harness import Agent, Proc, agent_env, wait_for
from tests.prod import stack
from tests.support import free_port, need_service, port_open

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.prod]

OUTSIDE = "127.0.0.2"
CONSOLE_HOST = "cairn.prodcheck.test"
ADMIN, ADMIN_PASSWORD = "first-admin", "correct-horse-battery-staple-42"


def _admin_dsn() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        need_service("PostgreSQL (DATABASE_URL=postgres://...)")
    return url


class Services:
    """PostgreSQL (a database of its own), Redis with a password, S3."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.run = uuid.uuid4().hex[:8]
        self.db, self.role = f"cairn_prod_{self.run}", f"cairn_prod_{self.run}"
        self.pg_password = secrets.token_urlsafe(18)
        self.redis_password = secrets.token_urlsafe(24)
        self.procs: list[Proc] = []

    def start(self) -> Services:
        dsn = _admin_dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {self.role} LOGIN PASSWORD '{self.pg_password}'")
            conn.execute(f"CREATE DATABASE {self.db} OWNER {self.role}")
        pg = urlsplit(dsn)
        self.pg_host = f"{pg.hostname}:{pg.port or 5432}"
        if not shutil.which("redis-server"):
            need_service("redis-server")
        self.redis_port = free_port()
        self.procs.append(
            Proc(
                "redis",
                ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port),
                 "--requirepass", self.redis_password, "--save", "", "--appendonly", "no",
                 "--dir", str(self.tmp)],
                {"PATH": os.environ["PATH"]}, self.tmp / "redis.log",
            ).start()
        )  # fmt: skip
        self.s3_port = free_port()
        self.procs.append(
            Proc(
                "s3",
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)],
                {**os.environ}, self.tmp / "s3.log",
            ).start()
        )  # fmt: skip
        wait_for(lambda: port_open("127.0.0.1", self.redis_port), 30, "redis")
        wait_for(lambda: port_open("127.0.0.1", self.s3_port), 30, "the S3 server")
        return self

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {self.role}")


def _dotenv(services: Services, s3_public: str, gateway_public: str) -> dict[str, str]:
    """deploy/.env.example filled in as the admin would."""
    env = stack.env_example()
    env.update(
        SECRET_KEY=secrets.token_urlsafe(60),
        CAIRN_CONSOLE_HOST=CONSOLE_HOST,
        ALLOWED_HOSTS=CONSOLE_HOST,
        CSRF_TRUSTED_ORIGINS=f"https://{CONSOLE_HOST}",
        CAIRN_ORG="prodcheck",
        CAIRN_ADMIN_USERNAME=ADMIN,
        CAIRN_ADMIN_PASSWORD=ADMIN_PASSWORD,
        POSTGRES_PASSWORD=services.pg_password,
        REDIS_PASSWORD=services.redis_password,
        MINIO_ROOT_USER="prodcheck-root",
        MINIO_ROOT_PASSWORD=secrets.token_urlsafe(24),
        S3_PUBLIC_ENDPOINT=s3_public,
        CAIRN_GATEWAY_ADDRESS=gateway_public,
        WEB_CONCURRENCY="2",  # two cores shared by the whole suite
        CAIRN_HEARTBEAT_SECONDS="5",
    )
    return env


def _localise(env: dict[str, str], mapping: dict[str, str]) -> dict[str, str]:
    """What Docker's network and volumes do: names and paths to local ones."""
    out = {}
    for k, v in env.items():
        for a, b in mapping.items():
            v = v.replace(a, b)
        out[k] = v
    return out


def _rss(proc: psutil.Process) -> int:
    """Resident memory of a process and its children (gunicorn's and
    Celery's workers), in bytes."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


class Console:
    def __init__(self, base: str):
        self.base = base
        self.http = urllib3.PoolManager(
            headers={"Host": CONSOLE_HOST, "X-Forwarded-Proto": "https"}
        )
        self.token = ""

    def call(self, method, path, body=None, expect=(200, 201, 202)):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        r = self.http.request(
            method,
            self.base + path,
            body=None if body is None else json.dumps(body),
            headers={**self.http.headers, **headers},
            redirect=False,
        )
        assert r.status in expect, f"{method} {path}: {r.status} {r.data[:400]!r}"
        return json.loads(r.data) if r.data else None


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_production_installation_comes_up_and_serves_an_agent_from_outside(tmp_path):
    t0 = time.monotonic()
    services = Services(tmp_path).start()
    procs: list[Proc] = []
    forwards: list[Forwarder] = []
    try:
        web_port, gw_port, enroll_port = free_port(), free_port(), free_port()
        s3_out = Forwarder((OUTSIDE, 0), ("127.0.0.1", services.s3_port)).__enter__()
        gw_out = Forwarder((OUTSIDE, 0), ("127.0.0.1", gw_port)).__enter__()
        enroll_out = Forwarder((OUTSIDE, 0), ("127.0.0.1", enroll_port)).__enter__()
        forwards += [s3_out, gw_out, enroll_out]
        state = tmp_path / "cairnstate"  # the named volume
        dotenv = _dotenv(services, f"http://{s3_out.host_port}", gw_out.host_port)
        mapping = {
            f"postgres://cairn:{services.pg_password}@postgres:5432/cairn": (
                f"postgres://{services.role}:{services.pg_password}@{services.pg_host}/{services.db}"
            ),
            "@redis:6379/": f"@127.0.0.1:{services.redis_port}/",
            "http://minio:9000": f"http://127.0.0.1:{services.s3_port}",
            "0.0.0.0:7443": f"127.0.0.1:{gw_port}",
            "0.0.0.0:7444": f"127.0.0.1:{enroll_port}",
            "0.0.0.0:8000": f"127.0.0.1:{web_port}",
            "/var/lib/cairn": str(state),
            # the health checks, run inside the container, name its own ports
            "127.0.0.1:8000/": f"127.0.0.1:{web_port}/",
            "127.0.0.1:7443": f"127.0.0.1:{gw_port}",
            "127.0.0.1:7444": f"127.0.0.1:{enroll_port}",
        }
        base_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8"}

        def env_of(service: str) -> dict[str, str]:
            env = _localise(stack.cairn_environment(service, dotenv), mapping)
            assert env["CAIRN_ENV"] == "production"
            return {**base_env, **env, "CELERY_QUEUE": f"prodcheck-{services.run}"}

        # --- redis really wants its password --------------------------------------------
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=services.redis_port).ping()

        # --- init, twice: the second run changes nothing ---------------------------------
        def init() -> str:
            res = subprocess.run(
                stack.local_argv(stack.compose_command("init")),
                cwd=stack.ROOT, env=env_of("init"), capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert res.returncode == 0, res.stdout + res.stderr[-3000:]
            return res.stdout

        first = init()
        t_first_init = time.monotonic() - t0
        assert "organisation key" in first and "created" in first, first
        assert f"first admin: {ADMIN} created" in first, first
        assert "versioning Enabled" in first, first
        assert (state / "static" / "staticfiles.json").exists()
        assert oct((state / "keys" / "org.key").stat().st_mode & 0o777) == "0o600"
        second = init()
        assert "never replaced" in second and "an Admin exists" in second, second
        assert "present, versioning Enabled" in second, second
        t_init = time.monotonic() - t0

        # --- the services, in the documented order -----------------------------------------
        for name in ("gateway", "console", "worker", "beat"):
            argv = stack.local_argv(stack.compose_command(name))
            procs.append(Proc(name, argv, env_of(name), tmp_path / f"{name}.log").start())
        by_name = {p.name: p for p in procs}

        def diag() -> str:
            return "\n".join(f"--- {p.name}\n{p.tail(2000)}" for p in procs)

        def healthy(service: str) -> bool:
            spec = stack.compose()["services"][service]["healthcheck"]["test"]
            argv = [stack.interpolate(a, dotenv) for a in spec[1:]]
            argv = [_localise({"a": a}, mapping)["a"] for a in argv]
            res = subprocess.run(
                stack.local_argv(argv), cwd=stack.ROOT, env=env_of(service),
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            last[service] = res.stdout + res.stderr
            return res.returncode == 0

        last: dict[str, str] = {}

        def wait_healthy(name: str, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while not healthy(name):
                alive = by_name[name].alive()
                assert alive and time.monotonic() < deadline, (
                    f"{name} not healthy: {last[name]}\n{diag()}"
                )
                time.sleep(0.5)

        for name in ("console", "gateway"):
            wait_healthy(name, 90)
        t_ready = time.monotonic() - t0
        wait_healthy("beat", 60)

        # --- check --deploy is clean with this very environment --------------------------
        res = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=stack.ROOT, env=env_of("console"), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr

        # --- the first Admin signs in; static files come with the manifest's names -------
        api = Console(f"http://127.0.0.1:{web_port}")
        api.token = api.call(
            "POST", "/api/v1/auth/token/", {"username": ADMIN, "password": ADMIN_PASSWORD}
        )["token"]
        login = api.http.request("GET", api.base + "/login/", redirect=False)
        assert login.status == 200, login.data[:300]
        css = [w for w in login.data.decode().split('"') if "/static/cairn/cairn." in w]
        assert css and css[0] != "/static/cairn/cairn.css", css  # hashed by the manifest
        assert api.http.request("GET", api.base + css[0]).status == 200
        plain = urllib3.PoolManager().request(
            "GET", api.base + "/login/", headers={"Host": CONSOLE_HOST}, redirect=False
        )
        assert plain.status == 301 and plain.headers["Location"].startswith("https://")

        # --- an agent from outside enrolls, backs up, restores ------------------------------
        group = api.call("POST", "/api/v1/groups/", {"name": "first-pcs"})
        token = api.call(
            "POST",
            "/api/v1/enrollment-tokens/",
            {"name": "pc", "group": group["id"], "max_uses": 1},
        )["token"]
        user_home = tmp_path / "pc-user"
        docs = user_home / "Documents"
        (docs / "sub").mkdir(parents=True)
        (docs / "letter.txt").write_text("dear admin\n" * 500)
        (docs / "sub" / "data.bin").write_bytes(os.urandom(300_000))
        home = tmp_path / "agent"
        pc_env = {"HOME": str(user_home)}
        res = subprocess.run(
            [sys.executable, "-m", "agent.daemon", "enroll", "--server", enroll_out.host_port,
             "--token", token],
            cwd=stack.ROOT, env=agent_env(home, pc_env), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr + diag()
        agent_conf = json.loads((home / "agent.json").read_text())
        device = agent_conf["device_id"]
        # The PC knows only the published addresses.
        assert agent_conf["gateway_address"] == gw_out.host_port
        assert agent_conf["storage_endpoint"] == f"http://{s3_out.host_port}"
        assert "127.0.0.1" not in json.dumps(agent_conf)
        t_enrolled = time.monotonic() - t0

        spec = {
            "sources": {
                "linux": ["{Documents}"],
                "windows": ["{Documents}"],
                "macos": ["{Documents}"],
            },
            "schedule": {"every_hours": 24, "catch_up": False},
            "limits": {"pause_on_battery": False, "pause_on_metered": False},
        }
        policy = api.call("POST", "/api/v1/policies/", {"name": "first", "spec": spec})
        api.call(
            "POST",
            f"/api/v1/policies/{policy['id']}/assign/",
            {"group": group["id"], "precedence": 10},
        )
        agent = Agent(home, tmp_path / "agent.log", pc_env).start()
        procs.append(agent)
        wait_for(
            lambda: api.call("GET", f"/api/v1/devices/{device}/")["policy_in_sync"],
            90, f"the policy to reach the agent\n{diag()}",
        )  # fmt: skip
        backup = api.call("POST", f"/api/v1/devices/{device}/backup/")

        def command_state(cid):
            return api.call("GET", f"/api/v1/commands/{cid}/")["state"]

        wait_for(
            lambda: command_state(backup["id"]) in ("done", "failed"), 120, f"backup\n{diag()}"
        )
        assert command_state(backup["id"]) == "done", diag()
        snaps = api.call("GET", f"/api/v1/snapshots/?device={device}")["results"]
        assert snaps and snaps[0]["file_count"] >= 2, snaps
        t_backup = time.monotonic() - t0
        target = tmp_path / "restored"
        restore = api.call(
            "POST", f"/api/v1/devices/{device}/restore/",
            {"snapshot_id": snaps[0]["snapshot_id"], "target": str(target)},
        )  # fmt: skip
        wait_for(
            lambda: command_state(restore["id"]) in ("done", "failed"), 120, f"restore\n{diag()}"
        )
        assert command_state(restore["id"]) == "done", diag()
        assert _files(target / docs.relative_to("/")) == _files(docs)

        # --- idle memory of each process -----------------------------------------------------
        time.sleep(5)
        rss = {p.name: _rss(psutil.Process(p.proc.pid)) for p in procs if p.name != agent.name}
        rss["agent (idle daemon)"] = _rss(psutil.Process(agent.proc.pid))
        figures = {
            "first_init_seconds": round(t_first_init, 1),
            "both_inits_seconds": round(t_init, 1),
            "working_installation_seconds": round(t_ready, 1),
            "first_enrollment_seconds": round(t_enrolled, 1),
            "first_backup_seconds": round(t_backup, 1),
            "idle_rss_mib": {k: round(v / 2**20, 1) for k, v in rss.items()},
            "web_workers": int(dotenv["WEB_CONCURRENCY"]),
            "cpus": os.cpu_count(),
        }
        out = stack.ROOT / "var" / "prod-check.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(figures, indent=2) + "\n")
        print("\nprod-check figures:", json.dumps(figures, indent=2))
        for p in procs:
            assert p.alive(), f"{p.name} died\n{diag()}"
    finally:
        for p in reversed(procs):
            p.stop()
        for f in forwards:
            f.close()
        services.stop()
