"""`make demo`: the whole platform on one machine, on embedded defaults.

Starts each piece as a child process (console web server, Celery worker and
beat, and - as later capabilities land - the gRPC gateway and a local agent),
prints the console URL and the generated admin credentials, and on Ctrl-C
(or SIGTERM) stops every process it started.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

ADMIN_USERNAME = "admin"


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
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and keep_waiting():
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def run_demo(host: str = "127.0.0.1", port: int = 8000) -> int:
    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
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
        sup.start("web", [python, "manage.py", "runserver", "--noreload", f"{host}:{port}"])
        sup.start(
            "worker",
            [python, "-m", "celery", "-A", "console", "worker", "-l", "WARNING", "-c", "1"],
        )
        url = f"http://{host}:{port}/"
        if not wait_for_http(
            url + "healthz", lambda: not stop["requested"] and not sup.first_exited()
        ):
            if stop["requested"]:
                return 0
            print("console did not come up; see the output above", file=sys.stderr)
            return 1
        print(
            "\n"
            f"  Cairn console:  {url}\n"
            f"  Sign in as:     {creds['username']} / {creds['password']}\n"
            f"  Data under:     {settings.VAR_DIR}\n"
            "  Press Ctrl-C to stop everything.\n",
            flush=True,
        )
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
