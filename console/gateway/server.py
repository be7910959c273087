"""The gRPC gateway (grpc.aio): transport between agents and the console's
domain (console/fleet, jobs, policies, storage), never a domain itself.

Two listeners on one server:

* ``GATEWAY_BIND`` - mutual TLS, a client certificate signed by the console's
  CA is required: Connect, SubmitReports, GetStorageGrant, LeaseSpool,
  RenewCertificate;
* ``GATEWAY_ENROLL_BIND`` - server-authenticated TLS only, for Enroll (a PC
  has no certificate before it enrolls). Calls other than Enroll there are
  refused, as they carry no client certificate.

The servicer, ``Gateway``, is assembled from one facet per concern:

* console/gateway/stream.py - the ``Connect`` stream per agent;
* console/gateway/unary.py - the unary calls;
* console/gateway/delivery.py - commands and policies onto streams (from
  Redis pub/sub, Celery's delivery task publishing to the instance holding the
  device, and from the sweep);
* console/gateway/batching.py - heartbeats, acknowledgements and deliveries
  written in batches, and the periodic sweep of the database, which also
  closes the streams of revoked devices;
* console/gateway/metrics.py - this process's Prometheus exporter
  (``GATEWAY_METRICS_BIND``), read from the counters kept here.

This module holds the state they share, caller authentication, and the
listeners.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import grpc
from django import db as django_db

from agent.policy import Policy
from agent.rpc import agent_pb2_grpc as pb_grpc
from console.core import keys, pki
from console.gateway import conf, metrics
from console.gateway.batching import BatchedWrites
from console.gateway.delivery import CommandDelivery
from console.gateway.registry import AsyncRegistry
from console.gateway.services import identity
from console.gateway.session import Session
from console.gateway.stream import StreamServicer
from console.gateway.unary import UnaryCalls

log = logging.getLogger("cairn.gateway")


class Gateway(
    StreamServicer, UnaryCalls, CommandDelivery, BatchedWrites, pb_grpc.AgentGatewayServicer
):
    def __init__(self, instance_id: str | None = None, db_threads: int = 8):
        self.instance_id = instance_id or conf.instance_id()
        self.sessions: dict[str, Session] = {}
        self.heartbeats: dict[str, dict] = {}
        self.opened: dict[str, tuple] = {}
        self.to_deliver: list[tuple[str, str]] = []  # (device, command) from pub/sub
        self.acks: list[tuple[str, str, bool, str]] = []  # (device, command, ok, reason)
        self.policy_acks: dict[str, set[str]] = {}  # revision -> devices now running it
        self.spec_cache: dict[str, Policy] = {}
        self.progress: dict[tuple[str, str], object] = {}  # latest progress per job
        self.stopping = False
        self.closed_at_stop: list[str] = []
        self.work = asyncio.Event()
        self.seen_resolution = float(os.environ.get("CAIRN_LAST_SEEN_RESOLUTION_SECONDS", "30"))
        self.registry = AsyncRegistry(self.instance_id)
        self.executor = ThreadPoolExecutor(max_workers=db_threads, thread_name_prefix="gw-db")
        self.ca = pki.ensure_ca()  # production: CAMissing until manage.py init_keys
        keys.org_key()  # the same for the organisation key: refuse to start, create nothing
        self.stats = {"heartbeats": 0, "reports": 0, "reports_written": 0, "streams_opened": 0}
        self.delivered: dict[str, int] = {}  # messages written to streams, by command kind
        self._tasks: list[asyncio.Task] = []

    # -- plumbing -----------------------------------------------------------------
    async def db(self, fn, *args, **kwargs):
        def call():
            try:
                return fn(*args, **kwargs)
            except django_db.OperationalError:
                django_db.close_old_connections()
                raise

        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    async def _caller(self, context) -> str:
        return str((await self._device(context)).pk)

    async def _device(self, context):
        pem = (context.auth_context().get("x509_pem_cert") or [None])[0]
        try:
            caller = identity.caller_from_pem(pem)
            return await self.db(identity.authenticate, caller)
        except identity.Refused as exc:
            code = (
                grpc.StatusCode.PERMISSION_DENIED
                if exc.revoked
                else grpc.StatusCode.UNAUTHENTICATED
            )
            await context.abort(code, str(exc))
        except pki.PKIError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))


SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_connection_age_grace_ms", 30_000),
]


def _hosts(*binds: str) -> list[str]:
    hosts = []
    for b in binds:
        host = b.rpartition(":")[0].strip("[]")
        if host and host not in ("0.0.0.0", "::"):
            hosts.append(host)
    return hosts


async def serve(
    bind: str | None = None,
    enroll_bind: str | None = None,
    instance_id: str | None = None,
    ready=None,
    stop_event: asyncio.Event | None = None,
    metrics_bind: str | None = None,
) -> None:
    bind = bind or conf.bind()
    enroll_bind = enroll_bind or conf.enroll_bind()
    metrics_bind = conf.metrics_bind() if metrics_bind is None else metrics_bind
    gateway = Gateway(instance_id)
    public_host = conf.public_address().rpartition(":")[0]
    key_pem, chain_pem = pki.ensure_server_certificate(
        _hosts(bind, enroll_bind) + ([public_host] if public_host else []), ca=gateway.ca
    )
    server = grpc.aio.server(options=SERVER_OPTIONS, maximum_concurrent_rpcs=None)
    pb_grpc.add_AgentGatewayServicer_to_server(gateway, server)
    mtls = grpc.ssl_server_credentials(
        [(key_pem, chain_pem)], root_certificates=gateway.ca.cert_pem, require_client_auth=True
    )
    server_only = grpc.ssl_server_credentials([(key_pem, chain_pem)])
    port = server.add_secure_port(bind, mtls)
    eport = server.add_secure_port(enroll_bind, server_only)
    if not port or not eport:
        raise SystemExit(f"cannot listen on {bind} / {enroll_bind}")
    exporter = metrics.start_exporter(gateway, metrics_bind) if metrics_bind else None
    await server.start()
    await gateway.start_background()
    log.info("gateway %s listening: mTLS %s, enrollment %s", gateway.instance_id, bind, enroll_bind)
    if ready is not None:
        ready(gateway)
    stop_event = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop_event.set)
        except (NotImplementedError, RuntimeError):
            pass
    await stop_event.wait()
    log.info("gateway %s stopping", gateway.instance_id)
    gateway.stopping = True  # streams closing now are recorded in one batch
    await server.stop(grace=3)
    await gateway.stop_background()
    if exporter is not None:
        exporter.stop()
    gateway.executor.shutdown(wait=False)
