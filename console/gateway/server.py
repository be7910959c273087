"""The gRPC gateway (grpc.aio): thin handlers over console/gateway/services.

Two listeners on one server:

* ``GATEWAY_BIND`` - mutual TLS, a client certificate signed by the console's
  CA is required: Connect, SubmitReports, GetStorageGrant, LeaseSpool,
  RenewCertificate;
* ``GATEWAY_ENROLL_BIND`` - server-authenticated TLS only, for Enroll (a PC
  has no certificate before it enrolls). Calls other than Enroll there are
  refused, as they carry no client certificate.

Per stream: one reader task and the handler writing from a queue. Heartbeats
are buffered and written in batches; commands reach the stream from Redis
pub/sub (Celery's delivery task publishes to the instance holding the device)
and from a periodic sweep of the database, which also closes the streams of
revoked devices.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from django import db as django_db
from google.protobuf.timestamp_pb2 import Timestamp

from agent.policy import Policy
from agent.rpc import agent_pb2 as pb
from agent.rpc import agent_pb2_grpc as pb_grpc
from console.core import keys, pki
from console.fleet import enrollment
from console.gateway import conf
from console.gateway.registry import AsyncRegistry
from console.gateway.services import (
    connections,
    identity,
    policy,
    reports,
)
from console.jobs import commands
from console.policies import services as policies
from console.storage import grants

log = logging.getLogger("cairn.gateway")

PROTOCOL = pb.PROTOCOL_VERSION_1
POLICY_PREFIX = "policy:"
_CLOSE = object()


def _ts(value: dt.datetime | None) -> Timestamp:
    t = Timestamp()
    if value is not None:
        t.FromDatetime(value)
    return t


def _from_ts(t) -> dt.datetime | None:
    if t is None or (not t.seconds and not t.nanos):
        return None
    return t.ToDatetime(tzinfo=dt.UTC)


def _presigned(key: str, url: str, headers: dict) -> pb.PresignedUrl:
    return pb.PresignedUrl(object_key=key, url=url, headers=headers)


def command_message(cmd) -> pb.ConsoleMessage:
    """The wire form of a Command row (apply_policy is built by the caller)."""
    msg = pb.ConsoleMessage(command_id=str(cmd.id))
    if cmd.expires_at:
        msg.expires_at.CopyFrom(_ts(cmd.expires_at))
    payload = cmd.payload or {}
    if cmd.kind == "cancel":
        msg.cancel.job_command_id = str(
            payload.get("command")
            or payload.get("command_id")
            or payload.get("job_command_id")
            or ""
        )
    else:
        msg.run_job.kind = cmd.kind
        msg.run_job.args_json = json.dumps(payload)
    return msg


def policy_message(digest: str, policy: Policy, command_id: str = "") -> pb.ConsoleMessage:
    return pb.ConsoleMessage(
        command_id=command_id or f"{POLICY_PREFIX}{digest}",
        apply_policy=pb.ApplyPolicy(revision=digest, policy_json=policy.canonical_json()),
    )


class Session:
    __slots__ = (
        "device_id",
        "queue",
        "policy_sent",
        "policy_sent_at",
        "applied",
        "facts",
        "seen_written",
        "sent",
    )

    def __init__(self, device_id: str):
        self.device_id = device_id
        self.queue: asyncio.Queue = asyncio.Queue()
        self.policy_sent = ""
        self.policy_sent_at = 0.0
        self.applied = ""
        self.facts: dict = {}
        self.seen_written = time.monotonic()  # the stream's opening wrote it
        self.sent: dict[str, str] = {}  # command id -> policy hash it carried ('' if none)

    def send(self, msg) -> None:
        self.queue.put_nowait(msg)

    def close(self, code: grpc.StatusCode, reason: str) -> None:
        self.queue.put_nowait((_CLOSE, code, reason))


class Gateway(pb_grpc.AgentGatewayServicer):
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
        self.stats = {"heartbeats": 0, "reports": 0, "streams_opened": 0}
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

    # -- Enroll -------------------------------------------------------------------------
    async def Enroll(self, request, context):
        host = {
            f: getattr(request.host, f)
            for f in ("hostname", "os", "os_version", "agent_version", "username", "arch")
        }
        try:
            result = await self.db(
                enrollment.enroll, request.token, host, request.csr_pem, ca=self.ca
            )
        except enrollment.EnrollmentRefused as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except enrollment.EnrollmentUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        log.info("enrolled device %s (%s)", result.device.pk, result.device.hostname)
        return pb.EnrollResponse(
            device_id=str(result.device.pk),
            certificate_pem=result.certificate_pem,
            ca_certificate_pem=result.ca_certificate_pem,
            repository=pb.RepositoryLocation(
                url=result.repository_url,
                endpoint=result.storage_endpoint,
                region=result.storage_region,
            ),
            repository_keys=result.repository_key,
            gateway_address=conf.public_address(),
            org=result.org,
            storage_access=result.storage_access,
        )

    # -- unary calls ---------------------------------------------------------------------
    async def SubmitReports(self, request, context):
        device_id = await self._caller(context)
        accepted = []
        for report in request.reports:
            if await self.db(reports.ingest, device_id, report):
                accepted.append(report.idempotency_key)
        self.stats["reports"] += len(accepted)
        return pb.ReportAck(accepted_keys=accepted)

    async def GetStorageGrant(self, request, context):
        device_id = await self._caller(context)
        try:
            urls, expires_at = await self.db(
                grants.grant,
                device_id,
                request.method,
                list(request.object_keys),
                request.list_prefix,
                request.continuation_token,
            )
        except grants.GrantRefused as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        return pb.StorageGrant(
            urls=[_presigned(*u) for u in urls],
            expires_at=_ts(expires_at),
        )

    async def LeaseSpool(self, request, context):
        device_id = await self._caller(context)
        try:
            slots, issued_at, expires_at = await self.db(
                grants.lease_spool, device_id, request.slots
            )
        except grants.GrantRefused as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        log.info("spool lease of %d slots for %s until %s", len(slots), device_id, expires_at)
        return pb.SpoolLease(
            slots=[
                pb.SpoolSlot(id=i, object=_presigned(*obj), target=_presigned(*tgt))
                for i, obj, tgt in slots
            ],
            issued_at=_ts(issued_at),
            expires_at=_ts(expires_at),
        )

    async def RenewCertificate(self, request, context):
        device_id = await self._caller(context)
        try:
            pem = await self.db(identity.renew, device_id, request.csr_pem, self.ca)
        except pki.PKIError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        log.info("renewed the certificate of %s", device_id)
        return pb.RenewResponse(certificate_pem=pem, ca_certificate_pem=self.ca.cert_pem)

    # -- the stream ----------------------------------------------------------------------
    async def Connect(self, request_iterator, context):
        device = await self._device(context)
        device_id = str(device.pk)
        try:
            first = await asyncio.wait_for(context.read(), timeout=30)
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no Hello within 30 s")
        if first is grpc.aio.EOF or first.WhichOneof("body") != "hello":
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "the first message must be Hello"
            )
        hello = first.hello
        old = self.sessions.get(device_id)
        if old is not None:
            old.close(grpc.StatusCode.ABORTED, "replaced by a newer connection")
        session = Session(device_id)
        self.sessions[device_id] = session
        self.stats["streams_opened"] += 1
        reader = None
        try:
            host = {
                f: getattr(hello.host, f)
                for f in ("hostname", "os_version", "agent_version", "username")
            }
            has_commands = await self.db(
                connections.stream_opened, device, host, hello.policy_revision
            )
            # Online row and Redis registration are written in the next batch.
            self.opened[device_id] = (self.instance_id, dt.datetime.now(dt.UTC))
            await context.write(
                pb.ConsoleMessage(
                    welcome=pb.Welcome(
                        device_id=device_id,
                        gateway_id=self.instance_id,
                        protocol=PROTOCOL,
                        heartbeat_interval_seconds=conf.heartbeat_interval(),
                        server_time=_ts(dt.datetime.now(dt.UTC)),
                    )
                )
            )
            session.applied = hello.policy_revision
            running = set(hello.pending_command_ids) | set(hello.handled_command_ids)
            policy_queued = False
            if has_commands:
                sent = []
                for cmd in await self.db(commands.deliverable_for, device_id):
                    if str(cmd.id) in running:
                        continue
                    if await self._deliver(session, cmd, mark=False):
                        sent.append(cmd.pk)
                    policy_queued |= cmd.kind == "apply_policy"
                if sent:
                    await self.db(commands.mark_sent, sent)
            if not policy_queued and device.effective_hash != hello.policy_revision:
                await self._push_policy(session, force=True, digest=device.effective_hash)
            reader = asyncio.create_task(self._read(session, context))
            while True:
                item = await session.queue.get()
                if isinstance(item, tuple) and item and item[0] is _CLOSE:
                    if item[1] == grpc.StatusCode.OK:
                        return  # the agent closed its side: end the call cleanly
                    await context.abort(item[1], item[2])
                await context.write(item)
        finally:
            if reader is not None:
                reader.cancel()
            if self.sessions.get(device_id) is session:
                del self.sessions[device_id]
                self.heartbeats.pop(device_id, None)
                self.opened.pop(device_id, None)
                if self.stopping:
                    self.closed_at_stop.append(device_id)  # written in one batch
                else:
                    await self.registry.unregister(device_id)
                    try:
                        await self.db(connections.goodbye, device_id, self.instance_id)
                    except Exception:
                        log.exception("could not record disconnect of %s", device_id)

    async def _read(self, session: Session, context) -> None:
        try:
            while True:
                msg = await context.read()
                if msg is grpc.aio.EOF:
                    session.close(grpc.StatusCode.OK, "stream closed by the agent")
                    return
                await self._handle(session, msg)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken stream or a bug: end the stream
            log.warning("stream of %s ended: %s", session.device_id, exc)
            session.close(grpc.StatusCode.UNAVAILABLE, "stream error")

    async def _handle(self, session: Session, msg) -> None:
        kind = msg.WhichOneof("body")
        device_id = session.device_id
        if kind == "heartbeat":
            hb = msg.heartbeat
            self.stats["heartbeats"] += 1
            facts = {
                "state": hb.state,
                "pause_reason": hb.pause_reason,
                "next_backup_at": _from_ts(hb.next_backup_at),
                "outbox_size": hb.outbox_size,
            }
            previous = session.facts
            facts["changed"] = {k: v for k, v in facts.items()} != {
                k: v for k, v in previous.items() if k != "changed"
            }
            if previous.get("changed") and device_id in self.heartbeats:
                facts["changed"] = True  # not flushed yet
            session.facts = facts
            # last_seen needs minute precision, not every heartbeat: a device
            # is written when its state changed or its last write is old.
            now = time.monotonic()
            if facts["changed"] or now - session.seen_written >= self.seen_resolution:
                session.seen_written = now
                self.heartbeats[device_id] = facts
            if hb.policy_revision and hb.policy_revision != session.applied:
                session.applied = hb.policy_revision
                self.policy_acks.setdefault(hb.policy_revision, set()).add(device_id)
                self.work.set()
        elif kind == "ack":
            ack = msg.ack
            cid = ack.command_id
            if cid.startswith(POLICY_PREFIX):
                revision = cid[len(POLICY_PREFIX) :]
            else:
                revision = session.sent.get(cid, "")
                self.acks.append((device_id, cid, ack.accepted, ack.reason))
            if ack.accepted and revision:
                session.applied = revision
                self.policy_acks.setdefault(revision, set()).add(device_id)
            self.work.set()
        elif kind == "report":
            self.stats["reports"] += 1
            if msg.report.WhichOneof("body") == "progress":
                # Live progress is last-write-wins: keep the latest per job and
                # write it with the next batch (at most one write per job per
                # flush, however often agents report).
                self.progress[(device_id, msg.report.progress.job_id)] = msg.report
                return
            ok = await self.db(reports.ingest, device_id, msg.report)
            if ok and msg.report.idempotency_key:
                session.send(
                    pb.ConsoleMessage(
                        report_ack=pb.ReportAck(accepted_keys=[msg.report.idempotency_key])
                    )
                )
        elif kind == "hello":
            pass  # only the first message may be Hello; ignore repeats

    async def _effective(self, device_id: str, digest: str = ""):
        """(hash, Policy) of a device's effective policy. A policy is fully
        determined by its hash, so specs are cached by hash: a rollout to
        10,000 devices computes the merge once, not 10,000 times."""
        if digest and digest in self.spec_cache:
            return digest, self.spec_cache[digest]
        eff = await self.db(policy.effective, device_id)
        if eff is not None:
            if len(self.spec_cache) > 256:
                self.spec_cache.clear()
            self.spec_cache[eff[0]] = eff[1]
        return eff

    async def _deliver(self, session: Session, cmd, mark: bool = True) -> bool:
        """Write a command to the stream; marked sent now, or by the caller
        in a batch (mark=False). False when nothing was sent."""
        if str(cmd.id) in session.sent:
            return False  # already on this stream; the agent acks it once
        if cmd.kind == "apply_policy":
            eff = await self._effective(session.device_id, (cmd.payload or {}).get("hash", ""))
            if eff is None:
                self.acks.append((session.device_id, str(cmd.id), False, "no policy"))
                return False
            session.sent[str(cmd.id)] = eff[0]
            just_sent = (
                session.policy_sent == eff[0] and time.monotonic() - session.policy_sent_at < 60
            )
            if session.applied == eff[0] or just_sent:
                # The agent runs (or was just sent) this revision: its policy
                # acknowledgement completes the command; no second push.
                if session.applied == eff[0]:
                    self.policy_acks.setdefault(eff[0], set()).add(session.device_id)
                    self.work.set()
                return True
            msg = policy_message(eff[0], eff[1], command_id=str(cmd.id))
            session.policy_sent, session.policy_sent_at = eff[0], time.monotonic()
        else:
            msg = command_message(cmd)
            session.sent[str(cmd.id)] = ""
        session.send(msg)
        if mark:
            await self.db(commands.mark_sent, [cmd.id])
        return True

    async def _deliver_many(self, items) -> None:
        """Pub/sub deliveries, batched: one query loads the commands, one
        UPDATE marks them sent."""
        by_id = {c: d for d, c in items}
        rows = await self.db(commands.get_many, list(by_id))
        sent = []
        for cmd in rows:
            session = self.sessions.get(str(cmd.device_id))
            if session is None or str(cmd.device_id) != str(by_id.get(str(cmd.pk))):
                continue
            if cmd.state in ("pending", "sent") and await self._deliver(session, cmd, mark=False):
                sent.append(cmd.pk)
        if sent:
            await self.db(commands.mark_sent, sent)

    async def _push_policy(self, session: Session, force: bool = False, digest: str = "") -> None:
        """Send the effective policy unless the agent runs it or was sent it
        within a minute. ``digest`` (the device's effective hash, when the
        caller knows it) lets the spec come from the cache."""
        if digest and not force:
            recently = time.monotonic() - session.policy_sent_at < 60
            if digest == session.applied or (session.policy_sent == digest and recently):
                return
        eff = await self._effective(session.device_id, digest)
        if eff is None:
            return
        digest, spec = eff
        if digest == session.applied:
            return
        recently = time.monotonic() - session.policy_sent_at < 60
        if not force and session.policy_sent == digest and recently:
            return
        session.policy_sent, session.policy_sent_at = digest, time.monotonic()
        session.send(policy_message(digest, spec))

    # -- messages from Celery (Redis pub/sub) -----------------------------------------------
    async def on_message(self, message: dict) -> None:
        kind = message.get("type")
        device_id = str(message.get("device", ""))
        if kind == "revoke":
            session = self.sessions.get(device_id)
            if session is not None:
                session.close(grpc.StatusCode.PERMISSION_DENIED, "device revoked")
            return
        session = self.sessions.get(device_id)
        if session is None:
            return
        if kind == "command":
            self.to_deliver.append((device_id, str(message.get("command", ""))))
            self.work.set()
        elif kind == "policy":
            await self._push_policy(session)

    # -- periodic work --------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        interval = conf.heartbeat_flush_seconds()
        stats_every = float(os.environ.get("CAIRN_GATEWAY_STATS_SECONDS", "60"))
        last_register = last_stats = 0.0
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - last_stats >= stats_every:
                last_stats = time.monotonic()
                log.info(
                    "stats streams=%d heartbeats=%d reports=%d opened=%d flush_pending=%d",
                    len(self.sessions),
                    self.stats["heartbeats"],
                    self.stats["reports"],
                    self.stats["streams_opened"],
                    len(self.heartbeats),
                )
            batch, self.heartbeats = self.heartbeats, {}
            opened, self.opened = self.opened, {}
            progress, self.progress = self.progress, {}
            if progress:
                try:
                    await self.db(reports.ingest_progress, list(progress.items()))
                except Exception:
                    log.exception("progress flush failed")
            if opened:
                try:
                    await self.registry.register(list(opened))
                except Exception as exc:
                    log.warning("registry update failed: %s", exc)
            try:
                await self.db(connections.flush, opened, batch)
            except Exception:
                log.exception("heartbeat flush failed; will retry")
                for k, v in batch.items():
                    self.heartbeats.setdefault(k, v)
                for k, v in opened.items():
                    self.opened.setdefault(k, v)
            for facts in batch.values():
                facts["changed"] = False
            if time.monotonic() - last_register > self.registry.ttl / 3:
                try:
                    await self.registry.alive()
                    await self.registry.register(list(self.sessions))
                    last_register = time.monotonic()
                except Exception as exc:
                    log.warning("registry refresh failed: %s", exc)

    async def _work_loop(self) -> None:
        """Deliveries and acknowledgements, in batches: whatever arrived
        since the last round is written with a handful of statements."""
        while True:
            await self.work.wait()
            await asyncio.sleep(0.05)  # let a burst accumulate
            self.work.clear()
            deliver, self.to_deliver = self.to_deliver, []
            acks, self.acks = self.acks, []
            policy_acks, self.policy_acks = self.policy_acks, {}
            try:
                for i in range(0, len(deliver), 500):
                    await self._deliver_many(deliver[i : i + 500])
                if acks or policy_acks:
                    await self.db(commands.acknowledge_many, acks, policy_acks)
            except Exception:
                log.exception("batched delivery/acknowledgement failed; retrying")
                self.to_deliver[:0] = deliver
                self.acks[:0] = acks
                for rev, devs in policy_acks.items():
                    self.policy_acks.setdefault(rev, set()).update(devs)
                await asyncio.sleep(1)
                self.work.set()

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(conf.sweep_seconds())
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed")

    async def sweep(self) -> None:
        held = list(self.sessions)
        if not held:
            return
        for device_id in await self.db(identity.revoked_among, held):
            session = self.sessions.get(device_id)
            if session is not None:
                session.close(grpc.StatusCode.PERMISSION_DENIED, "device revoked")
        sent = []
        for cmd in await self.db(commands.pending_for_devices, held, conf.sweep_seconds()):
            session = self.sessions.get(str(cmd.device_id))
            if session is not None and await self._deliver(session, cmd, mark=False):
                sent.append(cmd.pk)
        if sent:
            await self.db(commands.mark_sent, sent)
        for device_id, digest in await self.db(policies.drifted, held):
            session = self.sessions.get(device_id)
            if session is not None:
                await self._push_policy(session, digest=digest)

    async def start_background(self) -> None:
        await self.registry.alive()
        self._tasks = [
            asyncio.create_task(self._flush_loop()),
            asyncio.create_task(self._work_loop()),
            asyncio.create_task(self._sweep_loop()),
            asyncio.create_task(self.registry.listen(self.on_message)),
        ]

    async def stop_background(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        batch, self.heartbeats = self.heartbeats, {}
        opened, self.opened = self.opened, {}
        try:
            if self.acks or self.policy_acks:
                await self.db(commands.acknowledge_many, self.acks, self.policy_acks)
            await self.db(connections.flush, opened, batch)
        except Exception:
            log.exception("final heartbeat flush failed")
        closed = self.closed_at_stop + list(self.sessions)
        try:
            await self.db(connections.goodbye_many, closed, self.instance_id)
        except Exception:
            log.exception("could not record the disconnects at shutdown")
        try:
            await self.registry.shutdown(closed)
        except Exception as exc:
            log.warning("registry shutdown: %s", exc)


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
) -> None:
    bind = bind or conf.bind()
    enroll_bind = enroll_bind or conf.enroll_bind()
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
    gateway.executor.shutdown(wait=False)
