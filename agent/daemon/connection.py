"""The daemon's link to the gateway: one bidirectional ``Connect`` stream
over mutual TLS, reopened with exponential backoff and full jitter (1 s
doubling to 5 min) whenever it drops - the gateway restarting, the network
gone for hours, the PC asleep. On every (re)connect the agent says Hello and
replays its outbox; while connected it sends heartbeats.

A device the gateway refuses (revoked) retries every few minutes at most (an
admin can un-revoke by re-enrolling) and shows "refused" in ``agent status``.

``GatewayConnection`` is one facet of ``agent.daemon.daemon.Daemon``; it
uses the daemon's ``home``, ``identity``, ``creds``, ``state``, ``stop_event``,
``current`` and ``pause_reason`` and sets the connection fields that
``agent status`` shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import grpc

from agent.daemon import channel, wire
from agent.daemon import enroll as enrolment
from agent.rpc import agent_pb2 as pb
from agent.rpc import agent_pb2_grpc as pb_grpc

log = logging.getLogger("cairn.agent")

BACKOFF_MIN = 1.0
BACKOFF_MAX = 300.0
REFUSED_RETRY = 300.0
#: a stream that lasted this long was a good connection: backoff starts over
GOOD_CONNECTION_SECONDS = 60


def backoff_delay(attempt: int, base: float = BACKOFF_MIN, cap: float = BACKOFF_MAX) -> float:
    """Full jitter: uniform in [base/2, min(cap, base * 2**attempt)]."""
    ceiling = min(cap, base * (2 ** min(attempt, 20)))
    return random.uniform(base / 2, max(base / 2, ceiling))


class GatewayConnection:
    outgoing: asyncio.Queue | None
    connected: bool
    connection_state: str
    last_error: str
    gateway_id: str
    heartbeat_interval: int

    async def _maybe_renew(self) -> None:
        """Renew the device certificate when it nears expiry (30 days)."""
        try:
            if enrolment.certificate_days_left(self.home) > enrolment.RENEW_BEFORE_DAYS:
                return
            await asyncio.to_thread(enrolment.renew_certificate, self.home, self.stub())
        except Exception as exc:
            log.warning("certificate renewal failed (will retry): %s", exc)
            return
        log.info("device certificate renewed")
        ca, key, cert = self.home.tls_material()
        self.creds = channel.mtls_credentials(ca, key, cert)
        if self._sync_channel is not None:
            self._sync_channel.close()
        self._sync_channel = self._sync_stub = None

    async def _connection_loop(self) -> None:
        attempt = 0
        while not self.stop_event.is_set():
            started = time.monotonic()
            delay = None
            try:
                await self._maybe_renew()
                await self._session()
                self.connection_state = "disconnected"
            except grpc.aio.AioRpcError as exc:
                delay = self._on_rpc_error(exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connection_state = "disconnected"
                self.last_error = str(exc)
                log.exception("connection error")
            finally:
                self.connected = False
                self.outgoing = None
            if time.monotonic() - started > GOOD_CONNECTION_SECONDS:
                attempt = 0
            if delay is None:
                delay = backoff_delay(attempt)
                attempt += 1
            self.state.set("next_connect_at", time.time() + delay)
            self.write_status()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=delay)

    def _on_rpc_error(self, exc: grpc.aio.AioRpcError) -> float | None:
        """Record why the stream ended; a refusal waits REFUSED_RETRY, any
        other end the usual backoff (None)."""
        code = exc.code()
        self.last_error = f"{code.name}: {exc.details()}"
        if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
            self.connection_state = "refused"
            log.error("the gateway refuses this device: %s", exc.details())
            return REFUSED_RETRY
        self.connection_state = "disconnected"
        log.warning("connection lost: %s", self.last_error)
        return None

    async def _session(self) -> None:
        self.connection_state = "connecting"
        async with channel.aio_channel(
            self.identity.gateway_address, self.creds, self.identity.server_name
        ) as ch:
            outgoing: asyncio.Queue = asyncio.Queue()
            outgoing.put_nowait(wire.hello(self.state))

            async def requests():
                while True:
                    msg = await outgoing.get()
                    if msg is None:
                        return
                    yield msg

            call = pb_grpc.AgentGatewayStub(ch).Connect(requests())
            await self._welcomed(call, outgoing)
            hb = asyncio.create_task(self._heartbeat_loop())
            try:
                while True:
                    msg = await call.read()
                    if msg is grpc.aio.EOF:
                        break
                    await self._on_console_message(msg)
                status = await call.code()
                if status not in (grpc.StatusCode.OK, None):
                    raise grpc.aio.AioRpcError(
                        status, call.initial_metadata, call.trailing_metadata, await call.details()
                    )
            finally:
                hb.cancel()
                outgoing.put_nowait(None)
                self.outgoing = None
                self.connected = False
                call.cancel()

    async def _welcomed(self, call, outgoing: asyncio.Queue) -> None:
        """Wait for the gateway's Welcome, then go live: replay the outbox
        (reports not yet acknowledged, oldest first) and send a heartbeat."""
        first = await asyncio.wait_for(call.read(), timeout=30)
        if first is grpc.aio.EOF or first.WhichOneof("body") != "welcome":
            raise ConnectionError("the gateway did not welcome us")
        self.gateway_id = first.welcome.gateway_id
        self.heartbeat_interval = first.welcome.heartbeat_interval_seconds or 30
        self.outgoing = outgoing
        self.connected = True
        self.connection_state = "connected"
        self.last_error = ""
        self.state.set("last_connected_at", time.time())
        log.info("connected to gateway %s", self.gateway_id)
        for key, payload in self.state.outbox_pending(10_000):
            report = pb.Report()
            report.ParseFromString(payload)
            report.idempotency_key = key
            outgoing.put_nowait(pb.AgentMessage(report=report))
        self._send_heartbeat()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            self._send_heartbeat()

    def _send_heartbeat(self) -> None:
        hb = pb.Heartbeat(
            at=wire.timestamp(time.time()),
            policy_revision=self.state.policy_revision,
            state=wire.agent_state(self.current, self.pause_reason),
            pause_reason=self.pause_reason,
            last_backup_at=wire.timestamp(self.state.get("last_backup_finished")),
            next_backup_at=wire.timestamp(self.state.get("next_backup_at")),
            outbox_size=self.state.outbox_size(),
        )
        if self.current is not None:
            hb.current.CopyFrom(wire.progress(self.current))
        self.send(pb.AgentMessage(heartbeat=hb))
