"""`make demo` serves the console login page on the printed URL, and Ctrl-C
stops every process it started."""

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_serves_login_page_and_ctrl_c_stops_everything(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CAIRN_ENV"}
    }
    env.update(CAIRN_VAR_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    port = _console_port()  # the gateway takes the next two
    log = tmp_path / "demo.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "demo", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = wait_until(
            lambda: (m := re.search(r"Cairn console:\s+(\S+)", log.read_text())) and m.group(1),
            timeout=120,
            what="the demo to print its URL",
        )
        creds = re.search(r"Sign in as:\s+(\S+) / (\S+)", log.read_text())
        assert creds, log.read_text()
        with urllib.request.urlopen(url + "login/", timeout=10) as response:
            assert response.status == 200
            assert b"Sign in to Cairn" in response.read()
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2, "the demo runs the console and at least a worker"

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(60) == 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(
            c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children
        ):
            time.sleep(0.2)
        alive = [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert alive == [], f"processes left running after Ctrl-C: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for child in psutil.Process().children(recursive=True):
            if child.pid != proc.pid and "manage.py" in " ".join(child.cmdline()):
                child.kill()


BANNER_NOISE = (
    "-------------- celery@",  # the worker's banner
    "celery beat v",  # beat's
    "SecurityWarning",  # Celery's root warning
    "superuser privileges",
    "This is a development server",  # runserver's notice
    "Performing system checks",
)


def _session_env(tmp_path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CAIRN_ENV"} and not k.startswith("CAIRN_GATEWAY")
    }
    env.update(CAIRN_VAR_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    return env


def _run_until_banner(argv, env, log: Path) -> tuple[subprocess.Popen, dict]:
    with open(log, "w") as out:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until(
            lambda: "Press Ctrl-C" in log.read_text() or proc.poll() is not None,
            timeout=120,
            what="the demo's banner",
        )
        text = log.read_text()
        assert proc.poll() is None, text
        gw = re.search(
            r"Gateway:\s+127\.0\.0\.1:(\d+) \(mTLS\), enrollment 127\.0\.0\.1:(\d+)", text
        )
        info = {
            "url": re.search(r"Cairn console:\s+(\S+)", text).group(1),
            "user": re.search(r"Sign in as:\s+(\S+) / (\S+)", text).groups(),
            "ports": (int(gw.group(1)), int(gw.group(2))),
            "ca": re.search(r"CA fingerprint:\s+([0-9a-f]{64})", text).group(1),
        }
        return proc, info
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    try:
        proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _agent_connected(home: Path) -> bool:
    try:
        return json.loads((home / "status.json").read_text()).get("connection") == "connected"
    except (OSError, ValueError):
        return False


def _enrollment_page(url: str, user: tuple[str, str]) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(url + "login/", timeout=10).read()
    csrf = next(c.value for c in jar if c.name == "csrftoken")
    body = urllib.parse.urlencode(
        {"username": user[0], "password": user[1], "csrfmiddlewaretoken": csrf}
    ).encode()
    req = urllib.request.Request(url + "login/", data=body, headers={"Referer": url + "login/"})
    opener.open(req, timeout=10).read()
    return opener.open(url + "enrollment/", timeout=10).read().decode()


@pytest.mark.slow
def test_make_demo_port_fixed_gateway_ports_across_quick_restarts_quiet_output(tmp_path):
    env = _session_env(tmp_path)
    port = _console_port()
    assert (
        "--port 9000"
        in subprocess.run(
            ["make", "-n", "demo", "PORT=9000"], cwd=ROOT, capture_output=True, text=True
        ).stdout
    )

    # 1: make demo PORT=… (the console there, the gateway on the next two ports)
    proc, first = _run_until_banner(["make", "demo", f"PORT={port}"], env, tmp_path / "run1.log")
    try:
        assert first["url"] == f"http://127.0.0.1:{port}/"
        assert first["ports"] == (port + 1, port + 2)
        home = tmp_path / "var" / "demo-agent"
        wait_until(lambda: _agent_connected(home), 60, what="the demo agent to connect")
        page = _enrollment_page(first["url"], first["user"])
        assert f"127.0.0.1:{port + 2}" in page and first["ca"] in page
        assert (
            f"--server 127.0.0.1:{port + 2}" not in page
        )  # the command shows with a new token only
    finally:
        _stop(proc)
    text = (tmp_path / "run1.log").read_text()
    assert not [n for n in BANNER_NOISE if n in text], text

    # 2 and 3: restarted at once (the gateway's ports still in TIME_WAIT): same ports,
    # the enrolled agent reconnects
    for run in (2, 3):
        log = tmp_path / f"run{run}.log"
        argv = [sys.executable, "manage.py", "demo", "--port", str(port)]
        proc, again = _run_until_banner(argv, env, log)
        try:
            assert again["ports"] == first["ports"] and again["ca"] == first["ca"]
            (home / "status.json").unlink(missing_ok=True)
            wait_until(lambda: _agent_connected(home), 60, what=f"the agent to reconnect ({run})")
        finally:
            _stop(proc)
        assert not [n for n in BANNER_NOISE if n in log.read_text()], log.read_text()


def _console_port() -> int:
    """A free port for the demo's console whose next two (the gateway's) are free too."""
    port = free_port()
    while not all(_free(p) for p in (port + 1, port + 2)):
        port = free_port()
    return port


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_taken_gateway_port_is_a_clear_error_not_a_move(tmp_path):
    env = _session_env(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        res = subprocess.run(
            [sys.executable, "manage.py", "demo", "--port", str(free_port()), "--gateway-port", str(taken)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert res.returncode == 1
    assert f"127.0.0.1:{taken} already in use" in res.stderr and "GATEWAY_PORT" in res.stderr
