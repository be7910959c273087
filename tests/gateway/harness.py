"""Real processes for control-plane tests: the gateway, agents, runserver,
Celery beat. Each helper binds 127.0.0.1 on free ports and is stopped by the
caller (context managers), so nothing outlives a test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import free_port, port_open, wait_until

ROOT = Path(__file__).resolve().parents[2]


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict, log: Path, cwd=ROOT):
        self.name, self.argv, self.env, self.log, self.cwd = name, argv, env, log, cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL, 10)

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class Gateway(Proc):
    def __init__(self, env: dict, log: Path, port: int | None = None, eport: int | None = None):
        self.port = port or free_port()
        self.eport = eport or free_port()
        env = {
            **env,
            "CAIRN_GATEWAY_BIND": f"127.0.0.1:{self.port}",
            "CAIRN_GATEWAY_ENROLL_BIND": f"127.0.0.1:{self.eport}",
            "CAIRN_GATEWAY_ADDRESS": f"127.0.0.1:{self.port}",
        }
        super().__init__(
            "gateway",
            [
                sys.executable,
                "manage.py",
                "run_gateway",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--enroll-bind",
                f"127.0.0.1:{self.eport}",
            ],
            env,
            log,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def enroll_address(self) -> str:
        return f"127.0.0.1:{self.eport}"

    def start(self, timeout: float = 60) -> Gateway:
        super().start()
        wait_until(
            lambda: (
                not self.alive()
                or (port_open("127.0.0.1", self.port) and port_open("127.0.0.1", self.eport))
            ),
            timeout,
            0.1,
            what="gateway to listen",
        )
        assert self.alive(), f"gateway exited:\n{self.tail()}"
        return self


def agent_env(home: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    env.update(CAIRN_AGENT_HOME=str(home), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def run_enroll(
    home: Path, gateway: Gateway, token: str, extra_env: dict | None = None
) -> subprocess.CompletedProcess:
    """``agent enroll`` with ``home`` as the agent's home, whatever its outcome."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.daemon",
            "enroll",
            "--server",
            gateway.enroll_address,
            "--token",
            token,
        ],
        cwd=ROOT,
        env=agent_env(home, extra_env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def enroll_agent(home: Path, gateway: Gateway, token: str, extra_env: dict | None = None) -> str:
    res = run_enroll(home, gateway, token, extra_env)
    assert res.returncode == 0, res.stderr + res.stdout
    return json.loads((home / "agent.json").read_text())["device_id"]


class Agent(Proc):
    def __init__(self, home: Path, log: Path, extra_env: dict | None = None):
        super().__init__(
            f"agent-{home.name}",
            [sys.executable, "-m", "agent.daemon", "run", "--log-level", "INFO"],
            agent_env(home, extra_env),
            log,
        )
        self.home = home

    def status(self) -> dict:
        try:
            return json.loads((self.home / "status.json").read_text())
        except (OSError, ValueError):
            return {}


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    """wait_until with a friendlier name for multi-process tests."""
    return wait_until(predicate, timeout, interval, what=what)


def now() -> float:
    return time.time()


class StreamClient:
    """A minimal agent speaking the protocol by hand (sync gRPC), for tests
    that need to see individual messages."""

    def __init__(self, home: Path, address: str | None = None):
        import queue

        import grpc

        from agent.daemon import channel
        from agent.daemon.home import AgentHome
        from agent.rpc import agent_pb2 as pb
        from agent.rpc import agent_pb2_grpc as pb_grpc

        self.pb = pb
        h = AgentHome(home)
        ident = h.load_identity()
        self.device_id = ident.device_id
        ca, key, cert = h.tls_material()
        self.channel = grpc.secure_channel(
            address or ident.gateway_address, channel.mtls_credentials(ca, key, cert)
        )
        self.stub = pb_grpc.AgentGatewayStub(self.channel)
        self.out: queue.Queue = queue.Queue()
        self.call = None

    def connect(self, revision: str = "", handled=()):
        pb = self.pb
        self.out.put(
            pb.AgentMessage(
                hello=pb.Hello(
                    host=pb.HostFacts(hostname="test-client", os="linux", agent_version="t"),
                    policy_revision=revision,
                    protocol=pb.PROTOCOL_VERSION_1,
                    handled_command_ids=list(handled),
                )
            )
        )

        def requests():
            while True:
                msg = self.out.get()
                if msg is None:
                    return
                yield msg

        self.call = self.stub.Connect(requests())
        return self

    def send(self, msg) -> None:
        self.out.put(msg)

    def recv(self):
        return next(self.call)

    def recv_until(self, predicate, limit: int = 50):
        for _ in range(limit):
            msg = self.recv()
            if predicate(msg):
                return msg
        raise AssertionError("expected message not received")

    def close(self) -> None:
        self.out.put(None)
        if self.call is not None:
            self.call.cancel()
        self.channel.close()
