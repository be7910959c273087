"""Who may scrape, and the HTTP exporter of processes that serve no web pages.

Scrapes are authorised by a bearer token (``CAIRN_METRICS_TOKEN``), not by an
address allowlist: the console sits behind a load balancer, so the address
Django sees is the balancer's and the forwarded one is whatever the client
wrote; a token works through any proxy, and Prometheus sends one from a file
(``authorization: credentials_file:``, deploy/prometheus.yml). With no token
set, development answers anyone (``make demo``); production refuses every
scrape and says which setting to set. The same rule guards the gateway's and
the workers' exporters.
"""

from __future__ import annotations

import hmac
import logging
import threading
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger("cairn.metrics")

#: what a refused scrape is told (no detail on which token was expected)
UNAUTHORIZED = "metrics: send Authorization: Bearer <CAIRN_METRICS_TOKEN>\n"
DISABLED = "metrics: refused in production until CAIRN_METRICS_TOKEN is set\n"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    status: int = 200
    message: str = ""


def decide(authorization: str | None) -> Decision:
    """May a request with this ``Authorization`` header scrape?"""
    token = getattr(settings, "CAIRN_METRICS_TOKEN", "") or ""
    if not token:
        if getattr(settings, "PRODUCTION", False):
            return Decision(False, 403, DISABLED)
        return Decision(True)
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        return Decision(False, 401, UNAUTHORIZED)
    return Decision(True)


def guarded(app):
    """A WSGI app that answers only authorised scrapes."""

    def guarded_app(environ, start_response):
        decision = decide(environ.get("HTTP_AUTHORIZATION"))
        if not decision.allowed:
            headers = [("Content-Type", "text/plain; charset=utf-8")]
            if decision.status == 401:
                headers.append(("WWW-Authenticate", 'Bearer realm="cairn-metrics"'))
            reason = "Unauthorized" if decision.status == 401 else "Forbidden"
            start_response(f"{decision.status} {reason}", headers)
            return [decision.message.encode()]
        return app(environ, start_response)

    return guarded_app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # one line per scrape is noise
        pass


def parse_bind(bind: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9464`` for IPv6) → (host, port); a clear error otherwise."""
    host, sep, port = bind.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"metrics bind {bind!r}: expected host:port, e.g. 127.0.0.1:9464")
    return host.strip("[]") or "0.0.0.0", int(port)


class Exporter:
    """``/metrics`` of ``registry`` over HTTP on its own thread (any path answers)."""

    def __init__(self, bind: str, registry: CollectorRegistry):
        host, port = parse_bind(bind)
        self.server = make_server(
            host, port, guarded(make_wsgi_app(registry)), _Server, _QuietHandler
        )
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="metrics-exporter", daemon=True
        )

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> Exporter:
        self.thread.start()
        log.info("metrics exporter on %s:%d", *self.server.server_address[:2])
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
