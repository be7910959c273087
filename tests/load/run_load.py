"""Control-plane load run: one gateway process, N simulated agents.

    python -m tests.load.run_load --agents 1000 [--heartbeat 5] [--hold 30]

Steps (all on 127.0.0.1, every process stopped at the end):

1. a fresh PostgreSQL database (dropped afterwards) and Redis key prefix;
2. provision N devices with certificates (tests/load/provision.py);
3. start one gateway and one Celery worker;
4. start the simulator (tests/load/sim.py; split in processes of at most 5,000
   agents) and wait until the gateway holds N streams;
5. hold for ``--hold`` seconds and measure the heartbeats the gateway
   ingested per second (its own counters, logged every 2 s);
6. save a new policy revision and measure the time until all N devices
   have acknowledged it in the database.

Prints the figures as JSON and writes them to var/load/result-N.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.support import celery_worker_argv

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
STATS = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*stats streams=(\d+) heartbeats=(\d+)", re.M
)


def _spawn(argv, env, log):
    out = open(log, "ab")  # noqa: SIM115 - closed by the child's lifetime
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(proc, timeout=20):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _gateway_stats(log: Path):
    """(log time as epoch seconds, streams, heartbeats) of the latest stats line."""
    import datetime as dt

    found = STATS.findall(log.read_text(errors="replace"))
    if not found:
        return None
    when, s, h = found[-1]
    t = dt.datetime.strptime(when, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return t, int(s), int(h)


def run(agents: int, heartbeat: float, hold: float, base_db: str, redis_url: str) -> dict:
    from tests.support import free_port

    run_id = uuid.uuid4().hex[:8]
    work = ROOT / "var" / "load" / run_id
    work.mkdir(parents=True, exist_ok=True)
    dbname = f"cairn_load_{run_id}"
    import psycopg

    admin_url = base_db.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    port, eport = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": base_db.rsplit("/", 1)[0] + "/" + dbname,
        "REDIS_URL": redis_url,
        "CAIRN_REDIS_PREFIX": f"cairn-load-{run_id}:",
        "CELERY_QUEUE": f"cairn-load-{run_id}",
        "CAIRN_VAR_DIR": str(work / "var"),
        "CAIRN_GATEWAY_BIND": f"127.0.0.1:{port}",
        "CAIRN_GATEWAY_ENROLL_BIND": f"127.0.0.1:{eport}",
        "CAIRN_GATEWAY_STATS_SECONDS": "2",
        "CAIRN_HEARTBEAT_SECONDS": str(int(max(heartbeat, 1))),
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
    }
    procs = []
    result: dict = {"agents": agents, "heartbeat_interval_s": heartbeat, "cpus": os.cpu_count()}
    try:
        subprocess.run([PY, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        bundle = work / "bundle.jsonl"
        out = subprocess.run(
            [PY, "-m", "tests.load.provision", "--agents", str(agents), "--bundle", str(bundle)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        result["provision"] = json.loads(out.stdout.strip().splitlines()[-1])
        gw_log = work / "gateway.log"
        gw = _spawn([PY, "manage.py", "run_gateway"], {**env, "LOG_LEVEL": "INFO"}, gw_log)
        procs.append(gw)
        worker = _spawn(
            celery_worker_argv(env["CELERY_QUEUE"], f"load-{run_id}"), env, work / "worker.log"
        )
        procs.append(worker)
        time.sleep(3)
        per_proc = 5000
        sims = []
        duration = 60 + hold + 240 + agents / 50
        for offset in range(0, agents, per_proc):
            n = min(per_proc, agents - offset)
            sims.append(
                _spawn(
                    [
                        PY,
                        "-m",
                        "tests.load.sim",
                        "--bundle",
                        str(bundle),
                        "--address",
                        f"127.0.0.1:{port}",
                        "--agents",
                        str(n),
                        "--offset",
                        str(offset),
                        "--heartbeat",
                        str(heartbeat),
                        "--duration",
                        str(duration),
                        "--report",
                        str(work / f"sim-{offset}.json"),
                    ],
                    env,
                    work / f"sim-{offset}.log",
                )
            )
        procs += sims
        t0 = time.monotonic()
        while True:
            st = _gateway_stats(gw_log)
            if st and st[1] >= agents:
                break
            if time.monotonic() - t0 > 60 + agents / 20:
                raise RuntimeError(f"only {st and st[1]} of {agents} streams after the ramp")
            if gw.poll() is not None:
                raise RuntimeError("gateway exited:\n" + gw_log.read_text()[-3000:])
            time.sleep(0.5)
        result["all_streams_after_s"] = round(time.monotonic() - t0, 1)
        # Steady state: heartbeats ingested per second, from the gateway's counters.
        time.sleep(min(10, hold))
        t1, _, h1 = _gateway_stats(gw_log)
        time.sleep(hold)
        t2, s2, h2 = _gateway_stats(gw_log)
        result["streams_held"] = s2
        result["heartbeats_per_s"] = round((h2 - h1) / (t2 - t1), 1)
        result["heartbeats_offered_per_s"] = round(agents / heartbeat, 1)
        import psutil

        gp = psutil.Process(gw.pid)
        result["gateway_rss_mib"] = round(gp.memory_info().rss / 2**20, 1)
        result["gateway_cpu_percent"] = gp.cpu_percent(interval=5.0)
        # Rollout: a new revision until every device has acknowledged it.
        out = subprocess.run(
            [PY, "-m", "tests.load.provision", "--bump"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        bumped = json.loads(out.stdout.strip().splitlines()[-1])
        saved = bumped["saved_at"]
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            while True:
                acked = conn.execute(
                    "SELECT count(*) FROM fleet_device WHERE applied_hash = %s", (bumped["hash"],)
                ).fetchone()[0]
                if acked >= agents:
                    break
                if time.time() - saved > 600:
                    raise RuntimeError(f"only {acked} of {agents} acknowledged after 600 s")
                time.sleep(0.25)
        result["rollout_save_s"] = bumped["save_s"]
        result["rollout_saved_at"] = saved
        result["rollout_all_acked_s"] = round(time.time() - saved, 1)
    finally:
        for p in reversed(procs):
            _stop(p)
        for f in sorted(work.glob("sim-*.json")):
            result.setdefault("simulators", []).append(json.loads(f.read_text()))
        try:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                # Bounded: a DROP can wait behind other sessions on a shared server.
                conn.execute("SET statement_timeout = '30s'")
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        except Exception as exc:
            print(f"could not drop {dbname} (drop it later): {exc}", file=sys.stderr)
        try:
            import redis

            r = redis.Redis.from_url(redis_url)
            for k in r.scan_iter(match=f"cairn-load-{run_id}:*", count=1000):
                r.delete(k)
        except Exception:
            pass
        (work / "bundle.jsonl").unlink(missing_ok=True)
    out_file = ROOT / "var" / "load" / f"result-{agents}.json"
    out_file.write_text(json.dumps(result, indent=1))
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--heartbeat", type=float, default=5.0, help="seconds between heartbeats")
    p.add_argument("--hold", type=float, default=30.0)
    p.add_argument(
        "--database",
        default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    )
    p.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = p.parse_args(argv)
    if not 1 <= args.agents <= 10000:
        p.error("--agents between 1 and 10000")
    print(
        json.dumps(run(args.agents, args.heartbeat, args.hold, args.database, args.redis), indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
