"""Helpers shared by every test suite: free ports, waiting, and the rule for
missing services (skip on a developer's machine, fail under CI=true)."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def need_service(what: str) -> None:
    """A test needs a server this machine lacks: skip, or fail under CI."""
    message = f"needs {what}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(message)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
):
    """Poll until predicate() is truthy and return its value, or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def celery_worker_argv(queue: str, name: str) -> list[str]:
    """The command of a console Celery worker (two threads) consuming ``queue``,
    named ``name@<host>``."""
    return [
        sys.executable, "-m", "celery", "-A", "console", "worker", "-l", "WARNING",
        "-c", "2", "-P", "threads", "-Q", queue, "-n", f"{name}@%h",
    ]  # fmt: skip


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# Debian's chromium, driven by Playwright (its own browser download cannot
# work offline). The flags keep it from reaching out to Google's hosts.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def launch_chromium(playwright):
    """A headless Debian chromium from a started Playwright instance."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
