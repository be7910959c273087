"""`make demo` serves the console login page on the printed URL, and Ctrl-C
stops every process it started."""

import os
import re
import signal
import subprocess
import sys
import time
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
    port = free_port()
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
