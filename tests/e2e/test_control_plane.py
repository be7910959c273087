"""The whole product, end to end, as real processes over real sockets:
console (runserver + REST API), gateway, Celery worker on Redis, moto's S3
server, and two agent daemons.

Through the API an admin creates an enrollment token; both agents enroll;
a policy is created and assigned; both acknowledge its revision; each runs
its scheduled backup and a "back up now"; the snapshots appear in the
console; a restore requested through the API gives byte-identical files.
The gateway is killed mid-stream: a scheduled backup still runs (through
the agent's leased spool slots, filed in place by the Celery worker after
the reconnect, and it is the snapshot restored), agents reconnect, the
command queued meanwhile arrives. The policy changes while one agent is stopped (it
converges when started), and a revoked device is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import urllib3

from agent.daemon.state import State
from tests.gateway.harness import ROOT, Agent, Gateway, Proc, enroll_agent, wait_for
from tests.support import free_port, port_open

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class Api:
    def __init__(self, base: str, token: str):
        self.base = base
        self.http = urllib3.PoolManager(
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"}
        )

    def call(self, method: str, path: str, body=None, expect=(200, 201, 202, 204)):
        r = self.http.request(
            method, self.base + path, body=json.dumps(body) if body is not None else None
        )
        assert r.status in expect, f"{method} {path}: {r.status} {r.data[:500]!r}"
        return json.loads(r.data) if r.data else None

    def get(self, path):
        return self.call("GET", path)

    def post(self, path, body=None):
        return self.call("POST", path, body or {})

    def results(self, path):
        data = self.get(path)
        return data["results"] if isinstance(data, dict) and "results" in data else data


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def worker_env(s3_server, s3_bucket) -> dict:
    """Every console process sees moto's S3 (the worker promotes spools)."""
    return {
        "S3_ENDPOINT": s3_server.endpoint,
        "S3_BUCKET": s3_bucket,
        "S3_ACCESS_KEY": s3_server.access_key,
        "S3_SECRET_KEY": s3_server.secret_key,
        "CAIRN_ORG": "e2e",
    }


@pytest.fixture
def platform(service_env, worker_env, s3_server, s3_bucket, celery_worker, tmp_path):
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_superuser("e2e-admin", "e2e@example.org", "x-e2e-pw-1")
    token = Token.objects.create(user=user).key
    env = {
        **service_env,
        **worker_env,
        "CAIRN_HEARTBEAT_SECONDS": "5",
        "CAIRN_GATEWAY_SWEEP_SECONDS": "2",
        "CAIRN_HEARTBEAT_FLUSH_SECONDS": "1",
    }
    web_port = free_port()
    web = Proc(
        "web",
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{web_port}"],
        env,
        tmp_path / "web.log",
    ).start()
    gateway = Gateway(env, tmp_path / "gateway.log").start()
    procs = [web, gateway]
    try:
        wait_for(lambda: port_open("127.0.0.1", web_port) or not web.alive(), 60, "runserver")
        assert web.alive(), web.tail()
        yield {
            "api": Api(f"http://127.0.0.1:{web_port}/api/v1", token),
            "s3": (s3_server.client(), s3_bucket),
            "gateway": gateway,
            "env": env,
            "procs": procs,
        }
    finally:
        for p in reversed(procs):
            p.stop()


def test_enroll_rollout_backup_restore_failover_converge_revoke(platform, tmp_path):
    api: Api = platform["api"]
    gateway: Gateway = platform["gateway"]
    procs: list = platform["procs"]

    # --- enrollment through the API ------------------------------------------------------
    group = api.post("/groups/", {"name": "e2e-laptops"})
    tok = api.post("/enrollment-tokens/", {"name": "e2e", "group": group["id"], "max_uses": 2})[
        "token"
    ]
    agents, ids, docs = {}, {}, {}
    for name in ("a", "b"):
        user_home = tmp_path / f"user-{name}"
        documents = user_home / "Documents"
        (documents / "reports").mkdir(parents=True)
        (documents / "notes.txt").write_text(f"notes of {name}\n" * 100)
        (documents / "reports" / "q1.bin").write_bytes(os.urandom(700_000))
        (documents / "reports" / "empty").write_bytes(b"")
        docs[name] = documents
        home = tmp_path / f"agent-{name}"
        ids[name] = enroll_agent(home, gateway, tok, {"HOME": str(user_home)})
        agents[name] = Agent(home, tmp_path / f"agent-{name}.log", {"HOME": str(user_home)}).start()
        procs.append(agents[name])

    def device(name):
        return api.get(f"/devices/{ids[name]}/")

    def jobs(name, **filters):
        runs = api.results(f"/jobs/?device={ids[name]}")
        return [j for j in runs if all(j.get(k) == v for k, v in filters.items())]

    def diag():
        return "\n".join(f"--- {p.name}\n{p.tail(1500)}" for p in procs)

    # --- policy created and assigned: both agents acknowledge its revision ---------------
    spec = {
        "sources": {"linux": ["{Documents}"], "windows": ["{Documents}"], "macos": ["{Documents}"]},
        "schedule": {"every_hours": 1, "catch_up": True},
        "limits": {"pause_on_battery": False, "pause_on_metered": False},
        "open_files": "preferred",
    }
    policy = api.post("/policies/", {"name": "e2e-policy", "spec": spec})
    api.post(f"/policies/{policy['id']}/assign/", {"group": group["id"], "precedence": 10})
    for name in ids:
        wait_for(
            lambda n=name: device(n)["policy_in_sync"], 60, f"{name} to ack the policy\n{diag()}"
        )
    first_hash = device("a")["effective_hash"]
    assert first_hash and device("b")["applied_hash"] == first_hash

    # --- each runs its scheduled backup by itself, then a "back up now" ------------------
    for name in ids:
        wait_for(
            lambda n=name: jobs(n, kind="backup", state="succeeded", trigger="schedule"),
            60,
            f"{name}'s scheduled backup\n{diag()}",
        )
        api.post(f"/devices/{ids[name]}/backup/")
    for name in ids:
        wait_for(
            lambda n=name: jobs(n, kind="backup", state="succeeded", trigger="manual"),
            60,
            f"{name}'s backup-now\n{diag()}",
        )
        snaps = api.results(f"/snapshots/?device={ids[name]}")
        assert len(snaps) >= 2 and all(s["file_count"] >= 3 for s in snaps[:2]), snaps
        assert device(name)["status"] == "protected"

    # --- the gateway dies mid-stream; the schedule still backs up to storage --------------
    wait_for(
        lambda: (agents["a"].status().get("offline") or {}).get("slots_left", 0) > 0,
        60,
        f"a's offline upload lease\n{diag()}",
    )
    gateway.kill()
    (docs["a"] / "notes.txt").write_text("changed while the gateway was down\n")
    a_state = State(agents["a"].home / "state.sqlite3")  # the agent's own database
    before = len(a_state.jobs(100))
    a_state.set("last_scheduled_start", time.time() - 3700)  # the hourly slot is due
    wait_for(
        lambda: len(a_state.jobs(100)) > before and a_state.jobs(1)[0]["state"] != "running",
        60,
        f"a's scheduled backup with the gateway down\n{diag()}",
    )
    offline_run = a_state.jobs(1)[0]
    a_state.close()
    assert offline_run["state"] == "succeeded", offline_run
    assert offline_run["stats"]["spooled_objects"] > 0
    s3, bucket = platform["s3"]
    spool_prefix = f"e2e/{ids['a']}/spool/"
    assert list(s3.list_objects(bucket, prefix=spool_prefix, recursive=True))

    # ... and a command queued meanwhile still arrives.
    command = api.post(f"/devices/{ids['a']}/backup/")
    time.sleep(2)
    assert api.get(f"/commands/{command['id']}/")["state"] == "pending"
    gateway = Gateway(platform["env"], gateway.log, port=gateway.port, eport=gateway.eport).start()
    procs.append(gateway)
    wait_for(
        lambda: api.get(f"/commands/{command['id']}/")["state"] == "done",
        60,
        f"the queued backup to run after the reconnect\n{diag()}",
    )
    for name in ids:
        wait_for(
            lambda n=name: agents[n].status().get("connection") == "connected",
            30,
            f"{name} reconnected",
        )

    # The offline run is reported on reconnect and its spool filed in place.
    wait_for(
        lambda: (
            not list(s3.list_objects(bucket, prefix=spool_prefix, recursive=True))
            and any(
                s["snapshot_id"] == offline_run["snapshot_id"]
                for s in api.results(f"/snapshots/?device={ids['a']}")
            )
        ),
        60,
        f"the offline backup to be promoted\n{diag()}",
    )

    # --- restore through the API (the snapshot taken offline): byte-identical files --------
    latest = offline_run["snapshot_id"]
    target = tmp_path / "restored"
    restore = api.post(
        f"/devices/{ids['a']}/restore/", {"snapshot_id": latest, "target": str(target)}
    )
    wait_for(
        lambda: api.get(f"/commands/{restore['id']}/")["state"] in ("done", "failed"),
        60,
        f"the restore\n{diag()}",
    )
    assert api.get(f"/commands/{restore['id']}/")["state"] == "done", diag()
    restored_root = target / docs["a"].relative_to("/")
    assert _files(restored_root) == _files(docs["a"])

    # --- the policy changes while agent b is stopped: it converges when started ----------
    agents["b"].stop()
    spec["schedule"]["every_hours"] = 2
    api.call("PUT", f"/policies/{policy['id']}/", {"name": "e2e-policy", "spec": spec})
    wait_for(lambda: device("a")["effective_hash"] != first_hash, 30, "the new revision")
    second_hash = device("a")["effective_hash"]
    wait_for(lambda: device("a")["applied_hash"] == second_hash, 60, f"a to ack\n{diag()}")
    assert device("b")["applied_hash"] == first_hash
    agents["b"] = Agent(
        agents["b"].home, agents["b"].log, agents["b"].env and {"HOME": agents["b"].env["HOME"]}
    ).start()
    procs.append(agents["b"])
    wait_for(lambda: device("b")["applied_hash"] == second_hash, 60, f"b to converge\n{diag()}")

    # --- revoking a device: refused at once, its stream closed ------------------------------
    api.post(f"/devices/{ids['b']}/revoke/", {"reason": "e2e"})
    wait_for(
        lambda: agents["b"].status().get("connection") == "refused", 30, f"b refused\n{diag()}"
    )
    from agent.rpc import agent_pb2 as pb
    from tests.gateway.harness import StreamClient

    client = StreamClient(agents["b"].home)
    try:
        with pytest.raises(grpc.RpcError) as err:
            client.stub.SubmitReports(pb.ReportBatch(), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        client.close()
    # a keeps working.
    assert agents["a"].status().get("connection") == "connected"
    res = subprocess.run(
        [sys.executable, "-m", "agent", "status"],
        cwd=ROOT,
        env=agents["a"].env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "connection:      connected" in res.stdout and second_hash[:12] in res.stdout, res.stdout
    assert "offline uploads: " in res.stdout and " objects until " in res.stdout, res.stdout
