"""Health probes for the service definitions (compose ``healthcheck``,
systemd ``ExecStartPost``), standard library only so a probe costs no
Django start-up:

    python -m console.probe http URL [HOST]   # 2xx; sent as HTTPS behind the proxy
    python -m console.probe tcp HOST:PORT ... # every port accepts a connection
    python -m console.probe fresh FILE SECONDS  # FILE changed within SECONDS (beat)

Exit status 0 when healthy, 1 with the reason on stderr otherwise.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.error
import urllib.request


def http(url: str, host: str = "") -> str:
    headers = {"X-Forwarded-Proto": "https"}  # as the TLS proxy sends it
    if host:
        headers["Host"] = host
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
        return f"{url}: {r.status}"


def tcp(*addresses: str) -> str:
    for address in addresses:
        host, _, port = address.rpartition(":")
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=5):
            pass
    return "listening: " + " ".join(addresses)


def fresh(path: str, seconds: str) -> str:
    """``path`` or, for a shelve that became several files (``.dat``,
    ``.dir`` with Python's dbm.dumb), the newest of them."""
    folder, name = os.path.split(path)
    times = [
        os.stat(os.path.join(folder or ".", f)).st_mtime
        for f in os.listdir(folder or ".")
        if f == name or f.startswith(name + ".")
    ]
    if not times:
        raise OSError(f"{path} does not exist")
    age = time.time() - max(times)
    if age > float(seconds):
        raise OSError(f"{path} last changed {age:.0f}s ago (more than {seconds}s)")
    return f"{path} changed {age:.0f}s ago"


PROBES = {"http": http, "tcp": tcp, "fresh": fresh}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in PROBES:
        print(f"usage: python -m console.probe {{{','.join(PROBES)}}} ARGS...", file=sys.stderr)
        return 2
    try:
        print(PROBES[argv[0]](*argv[1:]))
    except (OSError, ValueError, TypeError, urllib.error.URLError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
