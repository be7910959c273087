"""A real gateway process's Prometheus exporter, scraped over HTTP while a
real agent daemon holds its stream: streams held, heartbeats ingested, a
command delivered and its result written; anonymous scrapes refused."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from console.audit.services import SYSTEM
from console.fleet.models import Device
from console.fleet.services import create_enrollment_token
from console.gateway.models import DeviceConnection
from console.jobs.models import JobRun
from console.jobs.services import request_verify
from tests.gateway.harness import ROOT, Agent, Gateway, enroll_agent, wait_for
from tests.support import free_port

pytestmark = pytest.mark.slow

TOKEN = "gateway-metrics-token-42"


def scrape(url: str, token: str | None = TOKEN) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except OSError:
        return 0, {}  # not listening (yet)
    values: dict = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (
                s.name
                if set(s.labels) == {"gateway"}
                else (s.name, tuple(sorted(s.labels.items())))
            )
            values[key] = s.value
    return 200, values


def test_streams_held_heartbeats_and_deliveries_over_http(service_env, tmp_path):
    port = free_port()
    env = {
        **service_env,
        "CAIRN_HEARTBEAT_SECONDS": "1",
        "CAIRN_HEARTBEAT_FLUSH_SECONDS": "0.5",
        "CAIRN_GATEWAY_SWEEP_SECONDS": "1",
        "CAIRN_GATEWAY_METRICS_BIND": f"127.0.0.1:{port}",
        "CAIRN_METRICS_TOKEN": TOKEN,
        "CAIRN_GATEWAY_ID": f"gw-metrics-{uuid.uuid4().hex[:6]}",
    }
    url = f"http://127.0.0.1:{port}/metrics"
    gw = Gateway(env, tmp_path / "gateway.log").start()
    agent = None
    try:
        wait_for(lambda: scrape(url)[0] == 200, 15, "the exporter to answer")
        assert scrape(url, None)[0] == 401
        assert scrape(url, "wrong")[0] == 401
        assert scrape(url)[1]["cairn_gateway_streams_held"] == 0

        token = create_enrollment_token(SYSTEM, f"t-{uuid.uuid4().hex[:6]}")[1]
        device_id = enroll_agent(tmp_path / "agent", gw, token)
        agent = Agent(tmp_path / "agent", tmp_path / "agent.log").start()
        values = wait_for(
            lambda: (
                (v := scrape(url)[1]).get("cairn_gateway_streams_held") == 1
                and v.get("cairn_gateway_heartbeats_ingested_total", 0) >= 2
                and v
            ),
            30,
            "the agent's stream and two heartbeats",
        )
        assert values["cairn_gateway_streams_opened_total"] == 1
        wait_for(
            lambda: DeviceConnection.objects.filter(device_id=device_id, online=True).exists(),
            15,
            "the stream to register",
        )

        # A command delivered by the gateway's sweep, run by the agent, its result written.
        request_verify(SYSTEM, Device.objects.get(pk=device_id))
        verify = (
            "cairn_gateway_command_deliveries_total",
            (("gateway", env["CAIRN_GATEWAY_ID"]), ("kind", "verify")),
        )
        values = wait_for(
            lambda: (
                (v := scrape(url)[1]).get(verify) == 1
                and v.get("cairn_gateway_reports_written_total", 0) >= 1
                and v
            ),
            60,
            "the verify command delivered and its result written",
        )
        written = values["cairn_gateway_reports_written_total"]
        assert JobRun.objects.filter(device_id=device_id, kind="verify").exists()
        assert values["cairn_gateway_reports_received_total"] >= written

        agent.stop()
        agent = None
        wait_for(lambda: scrape(url)[1].get("cairn_gateway_streams_held") == 0, 15, "stream closed")
    finally:
        if agent is not None:
            agent.stop()
        gw.stop()


def test_a_bad_metrics_address_is_a_clear_error(service_env, tmp_path):
    def run(*args, env=None):
        return subprocess.run(
            [sys.executable, "manage.py", "run_gateway", "--bind", f"127.0.0.1:{free_port()}",
             "--enroll-bind", f"127.0.0.1:{free_port()}", *args],
            cwd=ROOT, env={**service_env, **(env or {})}, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip

    res = run("--metrics-bind", "nonsense")
    assert res.returncode != 0 and "expected host:port" in res.stderr, res.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = run(env={"CAIRN_GATEWAY_METRICS_BIND": f"127.0.0.1:{port}"})
    assert res.returncode != 0, res.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in res.stderr, res.stderr
