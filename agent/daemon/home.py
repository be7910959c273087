"""The agent's home directory (``CAIRN_AGENT_HOME``): identity, keys, state.

Layout::

    agent.json      device id, gateway address, repository location (0600)
    device.key      the TLS private key, generated here, never sent (0600)
    device.crt      the certificate the console's CA signed
    ca.crt          the console's CA certificate (trust anchor)
    repo.key        the device's repository key (0600)
    state.sqlite3   policy, schedule, outbox, job history, handled commands
    status.json     what ``agent status`` shows, refreshed by the daemon

Secrets are files readable only by the agent's user. ``KeyStore`` is the seam
where Windows DPAPI and the macOS Keychain plug in later.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path


def default_home() -> Path:
    env = os.environ.get("CAIRN_AGENT_HOME")
    if env:
        return Path(env)
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", "C:/ProgramData")) / "Cairn" / "agent"
    if os.geteuid() == 0:
        return Path("/var/lib/cairn-agent")
    return Path.home() / ".cairn-agent"


def write_private(path: Path, data: bytes) -> None:
    """Atomically write a file only the current user can read (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class KeyStore:
    """Where secrets live. Files with mode 0600 here; DPAPI / Keychain later."""

    def __init__(self, home: Path):
        self.home = home

    def put(self, name: str, data: bytes) -> None:
        write_private(self.home / name, data)

    def get(self, name: str) -> bytes:
        path = self.home / name
        mode = path.stat().st_mode & 0o077
        if mode and sys.platform != "win32":
            raise PermissionError(f"{path} is readable by others (mode {oct(mode)}); chmod 600 it")
        return path.read_bytes()


@dataclass
class Identity:
    device_id: str
    gateway_address: str
    org: str = ""
    repository_url: str = ""
    storage_endpoint: str = ""
    storage_region: str = ""
    storage_access: str = "grant"
    server_name: str = ""  # TLS name override, when the address is an IP not in the cert
    extra: dict = field(default_factory=dict)


class AgentHome:
    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else default_home()
        self.keys = KeyStore(self.path)

    # files
    @property
    def identity_file(self) -> Path:
        return self.path / "agent.json"

    @property
    def state_db(self) -> Path:
        return self.path / "state.sqlite3"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def cache_dir(self) -> Path:
        return self.path / "cache"

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if sys.platform != "win32":
            os.chmod(self.path, 0o700)

    def enrolled(self) -> bool:
        return self.identity_file.exists() and (self.path / "device.crt").exists()

    def load_identity(self) -> Identity:
        if not self.identity_file.exists():
            raise FileNotFoundError(
                f"not enrolled: {self.identity_file} is missing "
                "(run `python -m agent enroll --server HOST:PORT --token TOKEN`)"
            )
        data = json.loads(self.identity_file.read_text())
        known = {f for f in Identity.__dataclass_fields__}
        return Identity(**{k: v for k, v in data.items() if k in known})

    def save_identity(self, identity: Identity) -> None:
        write_private(self.identity_file, json.dumps(asdict(identity), indent=2).encode())

    def tls_material(self) -> tuple[bytes, bytes, bytes]:
        """(CA certificate, device key, device certificate) for mutual TLS."""
        return (
            (self.path / "ca.crt").read_bytes(),
            self.keys.get("device.key"),
            (self.path / "device.crt").read_bytes(),
        )

    def repository_key(self) -> bytes:
        return self.keys.get("repo.key")
