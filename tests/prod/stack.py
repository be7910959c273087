"""The production installation as declared in deploy/: read from the
compose file, the systemd units and .env.example, so that `make prod-check`
(test_prod_check.py) runs exactly what they declare, and fails when they
drift apart.

Docker's part is played by plain means: a service name (``postgres``,
``redis``, ``minio``) becomes a loopback port of a local server, a
published port a Forwarder on 127.0.0.2 (the "outside"), the
``cairnstate`` volume a directory, and the image's ``python``/``gunicorn``/
``celery`` the ones of this virtualenv.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
UNITS = DEPLOY / "systemd"
#: the Cairn services (one image), in the documented start order
CAIRN_SERVICES = ("init", "gateway", "console", "worker", "beat")
BIN = Path(sys.executable).parent
UNIT_PREFIX = "/opt/cairn/.venv/bin/"

_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?]([^}]*))?\}")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_command(service: str) -> list[str]:
    return list(compose()["services"][service]["command"])


def unit_command(service: str) -> list[str]:
    """ExecStart of deploy/systemd/cairn-<service>.service, virtualenv prefix dropped."""
    text = (UNITS / f"cairn-{service}.service").read_text()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv[0].startswith(UNIT_PREFIX), line
    argv[0] = argv[0].removeprefix(UNIT_PREFIX)
    return argv


def unit_environment(service: str) -> dict[str, str]:
    env = {}
    for line in (UNITS / f"cairn-{service}.service").read_text().splitlines():
        if line.startswith("Environment="):
            for item in shlex.split(line.removeprefix("Environment=")):
                k, _, v = item.partition("=")
                env[k] = v
    return env


def env_example() -> dict[str, str]:
    """Every variable .env.example sets (commented-out systemd-only ones excluded)."""
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def referenced_variables() -> set[str]:
    return {m.group(1) for m in _VAR.finditer(COMPOSE.read_text())}


def interpolate(value: str, dotenv: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} against the .env values."""

    def one(m: re.Match) -> str:
        name, rest = m.group(1), m.group(0)
        if dotenv.get(name):
            return dotenv[name]
        if ":?" in rest or "?" in rest.split(name, 1)[1][:2]:
            raise KeyError(f"{name} is required by {COMPOSE.name}: {m.group(2)}")
        return m.group(2) or ""

    return _VAR.sub(one, str(value))


def cairn_environment(service: str, dotenv: dict[str, str]) -> dict[str, str]:
    """What a Cairn container sees: env_file (.env) then the service's environment."""
    spec = compose()["services"][service]
    env = dict(dotenv)
    env.update({k: interpolate(v, dotenv) for k, v in (spec.get("environment") or {}).items()})
    return env


def local_argv(argv: list[str]) -> list[str]:
    """The image's executables are this virtualenv's."""
    head, *rest = argv
    if head == "python":
        return [sys.executable, *rest]
    return [str(BIN / head), *rest]
