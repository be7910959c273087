"""An upgrade from the previous release keeps everything, online.

The previous release is commit 89f5cca (the tree before issues 15-18 added
migrations to fleet, jobs, storage and two new apps), checked out with `git
worktree` and run with this virtualenv. Its own ``migrate`` and
``seed_demo`` build an installation with devices, groups, policies, job
history and snapshots in a fresh PostgreSQL database; its gateway runs and
an agent enrolled through it stays connected. Then the documented order
(docs/operations.md, "Upgrade"):

1. init (``manage.py init_installation`` of HEAD: the migrations) while the
   old gateway serves the agent: the old code keeps working on the new
   schema (the agent stays connected, its heartbeats keep landing);
2. the gateway replaced by HEAD's: the agent reconnects by itself;
3. console and workers (stateless, not needed to prove the data).

Every device, group, policy, assignment, job run and snapshot is still
there, row for row, and HEAD has no migration left to apply.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.gateway.harness import Agent, Proc, agent_env, wait_for
from tests.prod.stack import ROOT
from tests.support import free_port, need_service, port_open

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.prod]

PREVIOUS_RELEASE = "89f5cca"
TABLES = {
    "fleet_device": "id",
    "fleet_devicegroup": "id",
    "policies_policy": "id",
    "policies_policyrevision": "id",
    "policies_policyassignment": "id",
    "jobs_jobrun": "id",
    "jobs_snapshot": "snapshot_id",
    "audit_auditevent": "id",
}


def _rows(dsn: str) -> dict[str, set]:
    with psycopg.connect(dsn) as conn:
        return {
            t: {r[0] for r in conn.execute(f"SELECT {col} FROM {t}")} for t, col in TABLES.items()
        }


def _last_seen(dsn: str, device: str):
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT last_seen_at FROM fleet_device WHERE id = %s", (device,)
        ).fetchone()[0]


@pytest.fixture
def database():
    admin = os.environ.get("DATABASE_URL", "")
    if not admin.startswith("postgres"):
        need_service("PostgreSQL (DATABASE_URL=postgres://...)")
    name = f"cairn_upgrade_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base, _, _ = admin.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def previous_release(tmp_path):
    tree = tmp_path / "previous"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), PREVIOUS_RELEASE],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    try:
        yield tree
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            capture_output=True, timeout=120,
        )  # fmt: skip


def _manage(cwd: Path, env: dict, *args: str) -> str:
    res = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, f"{cwd.name}: manage.py {' '.join(args)}\n{res.stdout}{res.stderr}"
    return res.stdout


def test_upgrade_from_previous_release_keeps_data_while_agents_stay_connected(
    database, previous_release, tmp_path
):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CAIRN_", "S3_", "CELERY_", "PYTEST"))
    }
    env.update(
        DATABASE_URL=database,
        CAIRN_VAR_DIR=str(tmp_path / "state"),  # one state directory across the upgrade
        CAIRN_REDIS_PREFIX=f"upgrade-{uuid.uuid4().hex[:6]}:",
        CELERY_TASK_ALWAYS_EAGER="true",
        CAIRN_HEARTBEAT_SECONDS="2",
        CAIRN_HEARTBEAT_FLUSH_SECONDS="1",
        PYTHONUNBUFFERED="1",
    )
    old = dict(env, PYTHONPATH=str(previous_release))
    new = dict(env, PYTHONPATH=str(ROOT))

    # --- the previous release's installation, with data -------------------------------------
    _manage(previous_release, old, "migrate", "-v0")
    _manage(previous_release, old, "seed_demo", "--devices", "15", "--days", "4", "--seed", "3")
    token = _manage(
        previous_release, old, "shell", "-c",
        "from console.audit.services import SYSTEM\n"
        "from console.fleet.services import create_enrollment_token\n"
        "print(create_enrollment_token(SYSTEM, 'upgrade')[1])",
    ).strip().splitlines()[-1]  # fmt: skip
    port, eport = free_port(), free_port()
    binds = ["--bind", f"127.0.0.1:{port}", "--enroll-bind", f"127.0.0.1:{eport}"]
    gw_env = dict(old, CAIRN_GATEWAY_ADDRESS=f"127.0.0.1:{port}")
    procs: list[Proc] = []
    try:
        gateway = Proc(
            "old-gateway", [sys.executable, "manage.py", "run_gateway", *binds], gw_env,
            tmp_path / "old-gateway.log", cwd=previous_release,
        ).start()  # fmt: skip
        procs.append(gateway)
        wait_for(lambda: port_open("127.0.0.1", eport) or not gateway.alive(), 60, "old gateway")
        assert gateway.alive(), gateway.tail()
        home = tmp_path / "agent"
        res = subprocess.run(
            [sys.executable, "-m", "agent.daemon", "enroll", "--server", f"127.0.0.1:{eport}",
             "--token", token],
            cwd=ROOT, env=agent_env(home), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr + gateway.tail()
        device = json.loads((home / "agent.json").read_text())["device_id"]
        agent = Agent(home, tmp_path / "agent.log").start()
        procs.append(agent)

        def diag():
            return "\n".join(f"--- {p.name}\n{p.tail(2000)}" for p in procs)

        wait_for(lambda: agent.status().get("connection") == "connected", 60, f"agent\n{diag()}")
        wait_for(lambda: _last_seen(database, device), 30, f"a heartbeat\n{diag()}")
        before = _rows(database)
        assert len(before["fleet_device"]) == 16 and before["jobs_snapshot"], {
            t: len(v) for t, v in before.items()
        }

        # --- 1. init of the new release, online ---------------------------------------------
        out = _manage(ROOT, new, "init_installation", "--no-bucket")
        assert "database: migrated" in out, out
        seen_after_migrate = _last_seen(database, device)
        time.sleep(6)
        assert gateway.alive() and agent.status().get("connection") == "connected", diag()
        # The old gateway keeps writing heartbeats into the migrated schema.
        wait_for(
            lambda: _last_seen(database, device) > seen_after_migrate, 30, f"heartbeat\n{diag()}"
        )
        assert "Traceback" not in gateway.tail(100_000), gateway.tail()

        # --- 2. the gateway replaced by the new release's -----------------------------------
        gateway.stop()
        gateway = Proc(
            "new-gateway", [sys.executable, "manage.py", "run_gateway", *binds],
            dict(new, CAIRN_GATEWAY_ADDRESS=f"127.0.0.1:{port}"), tmp_path / "new-gateway.log",
        ).start()  # fmt: skip
        procs.append(gateway)
        reconnect = _last_seen(database, device)
        wait_for(
            lambda: (
                agent.status().get("connection") == "connected"
                and _last_seen(database, device) > reconnect
            ),
            90,
            f"the agent back on the new gateway\n{diag()}",
        )

        # --- everything is still there; nothing left to migrate ---------------------------------
        after = _rows(database)
        for table, ids in before.items():
            assert ids <= after[table], f"{table}: lost {len(ids - after[table])} rows"
        _manage(ROOT, new, "migrate", "--check")
        counts = _manage(
            ROOT, new, "shell", "-c",
            "from console.fleet.models import Device\n"
            "from console.jobs.models import Snapshot\n"
            "from console.policies.models import Policy\n"
            "print(Device.objects.count(), Policy.objects.count(), Snapshot.objects.count())",
        ).split()  # fmt: skip
        assert [int(c) for c in counts[-3:]] == [
            len(after["fleet_device"]),
            len(after["policies_policy"]),
            len(after["jobs_snapshot"]),
        ]
    finally:
        for p in reversed(procs):
            p.stop()
