"""The ``Connect`` stream, one per agent: Hello, Welcome, the backlog of
commands (and the policy, if the agent runs another revision), then one
reader task handling what the agent sends while the handler writes from the
session's queue. A newer stream from the same device replaces the older.

What the agent sends is cheap to receive: heartbeats, acknowledgements and
live progress go into the batches of console/gateway/batching.py; only job
results and events are written at once (they are acknowledged one by one).

``StreamServicer`` is one facet of ``console.gateway.server.Gateway``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import grpc

from agent.rpc import agent_pb2 as pb
from console.gateway import conf, wire
from console.gateway.services import connections, reports
from console.gateway.session import CLOSE, Session
from console.jobs import commands

log = logging.getLogger("cairn.gateway")

HELLO_TIMEOUT = 30
HOST_FACTS = ("hostname", "os_version", "agent_version", "username")


class StreamServicer:
    async def Connect(self, request_iterator, context):
        device = await self._device(context)
        device_id = str(device.pk)
        hello = await self._hello(context)
        old = self.sessions.get(device_id)
        if old is not None:
            old.close(grpc.StatusCode.ABORTED, "replaced by a newer connection")
        session = Session(device_id)
        self.sessions[device_id] = session
        self.stats["streams_opened"] += 1
        reader = None
        try:
            await self._welcome(session, device, hello, context)
            reader = asyncio.create_task(self._read(session, context))
            while True:
                item = await session.queue.get()
                if isinstance(item, tuple) and item and item[0] is CLOSE:
                    if item[1] == grpc.StatusCode.OK:
                        return  # the agent closed its side: end the call cleanly
                    await context.abort(item[1], item[2])
                await context.write(item)
        finally:
            if reader is not None:
                reader.cancel()
            await self._closed(session)

    async def _hello(self, context) -> pb.Hello:
        try:
            first = await asyncio.wait_for(context.read(), timeout=HELLO_TIMEOUT)
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no Hello within 30 s")
        if first is grpc.aio.EOF or first.WhichOneof("body") != "hello":
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "the first message must be Hello"
            )
        return first.hello

    async def _welcome(self, session: Session, device, hello: pb.Hello, context) -> None:
        """Record the stream, welcome the agent, queue its backlog."""
        device_id = session.device_id
        host = {f: getattr(hello.host, f) for f in HOST_FACTS}
        has_commands = await self.db(connections.stream_opened, device, host, hello.policy_revision)
        # Online row and Redis registration are written in the next batch.
        self.opened[device_id] = (self.instance_id, dt.datetime.now(dt.UTC))
        await context.write(
            pb.ConsoleMessage(
                welcome=pb.Welcome(
                    device_id=device_id,
                    gateway_id=self.instance_id,
                    protocol=wire.PROTOCOL,
                    heartbeat_interval_seconds=conf.heartbeat_interval(),
                    server_time=wire.timestamp(dt.datetime.now(dt.UTC)),
                )
            )
        )
        session.applied = hello.policy_revision
        policy_queued = False
        if has_commands:
            # Commands the agent says it runs or handled are not sent again.
            known = set(hello.pending_command_ids) | set(hello.handled_command_ids)
            backlog = [
                c
                for c in await self.db(commands.deliverable_for, device_id)
                if str(c.id) not in known
            ]
            policy_queued = any(c.kind == "apply_policy" for c in backlog)
            await self._deliver_all((session, c) for c in backlog)
        if not policy_queued and device.effective_hash != hello.policy_revision:
            await self._push_policy(session, force=True, digest=device.effective_hash)

    async def _closed(self, session: Session) -> None:
        """Forget the stream unless a newer one replaced it; at shutdown the
        disconnects are written in one batch (stop_background)."""
        device_id = session.device_id
        if self.sessions.get(device_id) is not session:
            return
        del self.sessions[device_id]
        self.heartbeats.pop(device_id, None)
        self.opened.pop(device_id, None)
        if self.stopping:
            self.closed_at_stop.append(device_id)
            return
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
        if kind == "heartbeat":
            self._heartbeat(session, msg.heartbeat)
        elif kind == "ack":
            self._acknowledged(session, msg.ack)
        elif kind == "report":
            await self._report(session, msg.report)
        # a repeated Hello is ignored: only the first message may be Hello

    def _heartbeat(self, session: Session, hb: pb.Heartbeat) -> None:
        device_id = session.device_id
        self.stats["heartbeats"] += 1
        facts = {
            "state": hb.state,
            "pause_reason": hb.pause_reason,
            "next_backup_at": wire.from_timestamp(hb.next_backup_at),
            "outbox_size": hb.outbox_size,
        }
        previous = session.facts
        facts["changed"] = facts != {k: v for k, v in previous.items() if k != "changed"}
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

    def _acknowledged(self, session: Session, ack: pb.CommandAck) -> None:
        cid = ack.command_id
        if cid.startswith(wire.POLICY_PREFIX):
            revision = cid[len(wire.POLICY_PREFIX) :]
        else:
            revision = session.sent.get(cid, "")
            self.acks.append((session.device_id, cid, ack.accepted, ack.reason))
        if ack.accepted and revision:
            session.applied = revision
            self.policy_acks.setdefault(revision, set()).add(session.device_id)
        self.work.set()

    async def _report(self, session: Session, report: pb.Report) -> None:
        self.stats["reports"] += 1
        if report.WhichOneof("body") == "progress":
            # Live progress is last-write-wins: keep the latest per job and
            # write it with the next batch (at most one write per job per
            # flush, however often agents report).
            self.progress[(session.device_id, report.progress.job_id)] = report
            return
        ok = await self.db(reports.ingest, session.device_id, report)
        if ok:
            self.stats["reports_written"] += 1
        if ok and report.idempotency_key:
            session.send(
                pb.ConsoleMessage(report_ack=pb.ReportAck(accepted_keys=[report.idempotency_key]))
            )
