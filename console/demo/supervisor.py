"""`make demo`: the whole platform on one machine, on embedded defaults.

Starts each piece as a child process - the console web server, the Celery
worker and beat, the gRPC gateway, and one local agent - prints the console
URL and the generated admin credentials, and on Ctrl-C (or SIGTERM) stops
every process it started.

The local agent is enrolled on first start with a token of a "Demo PCs"
group whose "Demo policy" backs up a sample folder under var/demo-data/ every
hour into the embedded local store (var/storage/); its first backup runs at
once and shows on the dashboard. Without Redis, commands reach it through
the gateway's periodic sweep of the database (a few seconds).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from agent.daemon.jobs import os_name
from console.audit.services import SYSTEM
from console.core import pki
from console.fleet.models import DeviceGroup
from console.fleet.services import create_enrollment_token
from console.gateway import conf as gateway_conf
from console.policies.models import Policy
from console.policies.services import assign_policy, create_policy

ADMIN_USERNAME = "admin"
DEFAULT_PORT = 8000
DEFAULT_GATEWAY_PORT = 7443


@dataclass
class Supervisor:
    """Child processes in start order; stopped in reverse order."""

    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def first_exited(self) -> tuple[str, int] | None:
        for name, proc in self.procs:
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop_all(self, grace: float = 10.0) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()  # each child stops its own pool processes
        deadline = time.monotonic() + grace
        for _, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # It leads its own session: the whole group goes, grandchildren too.
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def ensure_admin(credentials_file: Path) -> dict:
    """Create the demo admin once; reuse its credentials on later starts."""
    User = get_user_model()
    if credentials_file.exists():
        creds = json.loads(credentials_file.read_text())
        if User.objects.filter(username=creds["username"]).exists():
            return creds
    password = secrets.token_urlsafe(12)
    user, _ = User.objects.get_or_create(username=ADMIN_USERNAME, defaults={"is_staff": True})
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    creds = {"username": ADMIN_USERNAME, "password": password}
    credentials_file.parent.mkdir(parents=True, exist_ok=True)
    credentials_file.write_text(json.dumps(creds))
    credentials_file.chmod(0o600)
    return creds


def wait_for_http(url: str, keep_waiting, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and keep_waiting():
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.3)
    return False


SAMPLE_FILES = {
    "Documents/Quarterly report.txt": "Revenue grew 12% quarter on quarter.\n" * 200,
    "Documents/Meeting notes/2026-03-02.md": "# Weekly sync\n\n- backups: all green\n" * 50,
    "Documents/Budget.csv": "item,amount\n" + "".join(f"line {i},{i * 7}\n" for i in range(2000)),
    "Desktop/todo.txt": "call the printer vendor\nrenew the domain\n",
}


def prepare_demo_agent(python: str, enroll_address: str) -> tuple[Path, Path] | None:
    """Sample data, a group, a policy and an enrolled agent home (first start
    only). Returns (agent home, sample folder), or None if enrollment failed."""
    home = settings.VAR_DIR / "demo-agent"
    sample = settings.VAR_DIR / "demo-data"
    for rel, text in SAMPLE_FILES.items():
        path = sample / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if (home / "agent.json").exists():
        return home, sample
    group, _ = DeviceGroup.objects.get_or_create(
        name="Demo PCs", defaults={"description": "The local demo agent"}
    )
    if not Policy.objects.filter(name="Demo policy").exists():
        folder = str(sample)
        policy = create_policy(
            SYSTEM,
            "Demo policy",
            {
                # A source must be absolute on its OS: only this machine's OS.
                "sources": {os_name(): [folder]},
                "schedule": {"every_hours": 1, "catch_up": True},
                "limits": {"pause_on_battery": False, "pause_on_metered": False},
            },
            description="Backs up the demo sample folder every hour.",
        )
        assign_policy(SYSTEM, policy, group)
    _, token = create_enrollment_token(SYSTEM, "demo agent", group=group)
    env = {**os.environ, "CAIRN_AGENT_HOME": str(home)}
    deadline = time.monotonic() + 30
    while True:
        res = subprocess.run(
            [python, "-m", "agent", "enroll", "--server", enroll_address, "--token", token],
            env=env,
            capture_output=True,
            text=True,
        )
        if res.returncode == 0:
            return home, sample
        if time.monotonic() > deadline or "enrollment refused" in res.stderr:
            print(f"demo agent could not enroll: {res.stderr.strip()}", file=sys.stderr)
            return None
        time.sleep(0.5)


def _port_free(host: str, port: int) -> bool:
    """Whether ``port`` can be listened on. With SO_REUSEADDR, as the
    gateway's grpc listeners bind: a port whose last connections are still in
    TIME_WAIT after a quick restart is free (binding without it failed there,
    which moved the gateway to random ports and orphaned enrolled agents)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortsTaken(Exception):
    """The demo's fixed ports are held by another process."""


def gateway_addresses(console_port: int = DEFAULT_PORT, gateway_port: int | None = None):
    """The gateway's (mTLS, enrollment) listeners, always the same for the
    same command line, so agents enrolled against them keep connecting:
    CAIRN_GATEWAY_BIND when set; else ``gateway_port`` and the next port;
    else 7443/7444 with the default console port 8000, and the two ports
    after the console's with another one (``make demo PORT=9000``: 9001,
    9002). Ports another process listens on are an error, never a move."""
    if "CAIRN_GATEWAY_BIND" in os.environ:
        return gateway_conf.bind(), gateway_conf.enroll_bind()
    if gateway_port is None:
        gateway_port = DEFAULT_GATEWAY_PORT if console_port == DEFAULT_PORT else console_port + 1
    if not 0 < gateway_port < 65535:
        raise PortsTaken(f"gateway port {gateway_port} is out of range")
    bind, enroll = f"127.0.0.1:{gateway_port}", f"127.0.0.1:{gateway_port + 1}"
    taken = [a for a in (bind, enroll) if not _port_free("127.0.0.1", int(a.rpartition(":")[2]))]
    if taken:
        raise PortsTaken(
            f"{' and '.join(taken)} already in use (another demo running?): stop it, or run "
            "make demo PORT=<console port> GATEWAY_PORT=<gateway port>"
        )
    return bind, enroll


#: quiet children: no Celery banner or root warning, no runserver checks
#: and development-server notice; errors still show
QUIET_ENV = {
    "PYTHONWARNINGS": "ignore:You're running the worker with superuser privileges",
    "DJANGO_RUNSERVER_HIDE_WARNING": "true",
}


def _start_services(
    sup: Supervisor, python: str, host: str, port: int, gateway: tuple[str, str]
) -> tuple[str, str]:
    """Web server, Celery worker and beat, and the gateway. Returns the
    gateway's (mTLS, enrollment) addresses."""
    bind, enroll_bind = gateway
    # every child knows the gateway's addresses: the enrollment page shows them
    env = {
        **QUIET_ENV,
        "CAIRN_GATEWAY_BIND": bind,
        "CAIRN_GATEWAY_ENROLL_BIND": enroll_bind,
        "CAIRN_GATEWAY_ADDRESS": bind,
    }
    web = [python, "manage.py", "runserver", "--noreload", "--skip-checks", f"{host}:{port}"]
    sup.start("web", web, env=env)
    celery = [python, "-m", "celery", "-A", "console", "--quiet"]
    sup.start("worker", [*celery, "worker", "-l", "ERROR", "-c", "1"], env=env)
    beat_schedule = str(settings.VAR_DIR / "celerybeat-schedule")
    sup.start("beat", [*celery, "beat", "-l", "ERROR", "-s", beat_schedule], env=env)
    sup.start(
        "gateway",
        [python, "manage.py", "run_gateway", "--bind", bind, "--enroll-bind", enroll_bind],
        env=env,
    )
    return bind, enroll_bind


def _start_agent(sup: Supervisor, python: str, bind: str, enroll_bind: str):
    """The local demo agent, enrolled on first start. Returns (home, the
    folder it backs up), or None when it could not enroll."""
    prepared = prepare_demo_agent(python, enroll_bind)
    if prepared is not None:
        agent_home, _sample = prepared
        sup.start(
            "agent",
            [python, "-m", "agent", "run", "--log-level", "WARNING"],
            env={"CAIRN_AGENT_HOME": str(agent_home), "CAIRN_AGENT_GATEWAY": bind},
        )
    return prepared


def _banner(url: str, creds: dict, agent, bind: str, enroll_bind: str) -> str:
    lines = [
        "",
        f"  Cairn console:  {url}",
        f"  Sign in as:     {creds['username']} / {creds['password']}",
        f"  Data under:     {settings.VAR_DIR}",
    ]
    if agent is not None:
        home, sample = agent
        lines += [
            f"  Local agent:    backs up {sample} (CAIRN_AGENT_HOME={home};",
            f"                  `CAIRN_AGENT_HOME={home} python -m agent status`)",
        ]
    lines += [
        f"  Gateway:        {bind} (mTLS), enrollment {enroll_bind}",
        f"  CA fingerprint: {pki.ensure_ca().fingerprint}",
        "  Press Ctrl-C to stop everything.",
        "",
    ]
    return "\n".join(lines)


def run_demo(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, gateway_port: int | None = None
) -> int:
    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
    try:
        gateway = gateway_addresses(port, gateway_port)
    except PortsTaken as exc:
        print(f"cannot start the demo: {exc}", file=sys.stderr)
        return 1
    if not _port_free(host, port):
        print(
            f"cannot start the demo: {host}:{port} already in use: make demo PORT=<another port>",
            file=sys.stderr,
        )
        return 1
    call_command("migrate", verbosity=0, interactive=False)
    creds = ensure_admin(settings.VAR_DIR / "demo-admin.json")
    python = sys.executable
    sup = Supervisor()
    stop = {"requested": False}

    def request_stop(signum, frame):
        stop["requested"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        bind, enroll_bind = _start_services(sup, python, host, port, gateway)
        agent = _start_agent(sup, python, bind, enroll_bind)
        url = f"http://{host}:{port}/"
        if not wait_for_http(
            url + "healthz", lambda: not stop["requested"] and not sup.first_exited()
        ):
            if stop["requested"]:
                return 0
            print("console did not come up; see the output above", file=sys.stderr)
            return 1
        print(_banner(url, creds, agent, bind, enroll_bind), flush=True)
        while not stop["requested"]:
            exited = sup.first_exited()
            if exited:
                print(
                    f"{exited[0]} exited with status {exited[1]}; stopping the demo",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.5)
        return 0
    finally:
        print("stopping...", flush=True)
        sup.stop_all()
