"""`agent run`: the long-running agent.

Cooperating parts on one asyncio loop, each a facet of ``Daemon`` in its own
module:

* **connection** (agent/daemon/connection.py): the ``Connect`` stream to the
  gateway, reopened with backoff; Hello, outbox replay, heartbeats;
* **commands** (agent/daemon/commands.py): what the console asks, acknowledged
  and run at most once;
* **jobs and schedule** (agent/daemon/running.py): backups on the policy's
  schedule whether or not the console is reachable, one job at a time in a
  worker thread, the offline upload lease;
* **status** (agent/daemon/status.py): the status file and ``agent status``;
* **local API** (agent/daemon/localapi.py): self-service restore for the
  person at the PC, over a Unix socket and a loopback web page.

This module holds what they share: identity, credentials, local state, the
outgoing queue and the durable report path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time

from agent.daemon import channel, jobs, wire
from agent.daemon.commands import CommandHandling
from agent.daemon.connection import GatewayConnection
from agent.daemon.home import AgentHome
from agent.daemon.localapi import LocalApi
from agent.daemon.offline import OfflineSupport
from agent.daemon.running import JobRunning
from agent.daemon.state import State
from agent.daemon.status import StatusReporting
from agent.rpc import agent_pb2 as pb
from agent.rpc import agent_pb2_grpc as pb_grpc
from agent.snapshots.chooser import cleanup_stale_snapshots

log = logging.getLogger("cairn.agent")


class Daemon(GatewayConnection, CommandHandling, JobRunning, StatusReporting):
    def __init__(self, home: AgentHome, *, tick: float = 1.0):
        self.home = home
        self.identity = home.load_identity()
        # The gateway moved (or a demo picked other ports): override the address.
        if os.environ.get("CAIRN_AGENT_GATEWAY"):
            self.identity.gateway_address = os.environ["CAIRN_AGENT_GATEWAY"]
        self.state = State(home.state_db)
        self.tick = tick
        ca, key, cert = home.tls_material()
        self.creds = channel.mtls_credentials(ca, key, cert)
        self.stop_event = asyncio.Event()
        self.outgoing: asyncio.Queue | None = None  # set while connected
        self.connected = False
        self.connection_state = "starting"
        self.last_error = ""
        self.gateway_id = ""
        self.heartbeat_interval = 30
        self.job_queue: asyncio.Queue = asyncio.Queue()
        self.current: jobs.JobContext | None = None
        self.pause_reason = ""
        self._sync_channel = None
        self._sync_stub = None
        self._wake = asyncio.Event()
        self.stopped = False
        # Backups to S3 while the gateway is unreachable (agent/daemon/offline.py).
        self.offline = (
            OfflineSupport(home.path / "offline")
            if self.identity.storage_access == "grant"
            else None
        )
        self._lease_failed_at = 0.0
        # Self-service restore for the person at the PC (agent/daemon/localapi.py).
        self.local_api = LocalApi(self)

    def stub(self) -> pb_grpc.AgentGatewayStub:
        """A synchronous stub for job threads (storage grants)."""
        if self._sync_stub is None:
            self._sync_channel = channel.sync_channel(
                self.identity.gateway_address, self.creds, self.identity.server_name
            )
            self._sync_stub = pb_grpc.AgentGatewayStub(self._sync_channel)
        return self._sync_stub

    def send(self, msg: pb.AgentMessage) -> bool:
        q = self.outgoing
        if q is None:
            return False
        q.put_nowait(msg)
        return True

    def report(self, key: str, report: pb.Report) -> None:
        """Durable: into the outbox first, then onto the stream if connected.
        Removed from the outbox when the gateway acknowledges the key."""
        report.idempotency_key = key
        self.state.outbox_add(key, report.SerializeToString())
        self.send(pb.AgentMessage(report=report))

    async def run(self) -> None:
        self._recover_interrupted()
        self._cleanup_stale_snapshots()
        tasks = [
            asyncio.create_task(self._connection_loop(), name="connection"),
            asyncio.create_task(self._scheduler_loop(), name="scheduler"),
            asyncio.create_task(self._job_loop(), name="jobs"),
            asyncio.create_task(self._status_loop(), name="status"),
            asyncio.create_task(self._lease_loop(), name="offline-lease"),
        ]
        try:
            await self.local_api.start()
        except OSError as exc:
            log.warning("no local API for self-service restore: %s", exc)
        await self.stop_event.wait()
        await self.local_api.close()
        if self.current is not None:
            self.current.cancel.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.connection_state = "stopped"
        self.stopped = True
        self.write_status()
        if self._sync_channel is not None:
            self._sync_channel.close()
        self.state.close()

    def stop(self) -> None:
        self.stop_event.set()

    def _recover_interrupted(self) -> None:
        """Jobs that were running when the agent died are reported failed."""
        for job in self.state.interrupted_jobs():
            self.state.job_finished(job["id"], "failed", error="agent stopped during the job")
            result = pb.JobResult(
                job_id=job["id"],
                command_id=job["command_id"],
                kind=job["kind"],
                state="failed",
                error="the agent stopped during the job",
                finished_at=wire.timestamp(time.time()),
                policy_revision=self.state.policy_revision,
            )
            self.report(f"result:{job['id']}", pb.Report(result=result))
            if job["command_id"]:
                self.state.command_finished(job["command_id"], "failed")

    def _cleanup_stale_snapshots(self) -> None:
        try:
            for line in cleanup_stale_snapshots(str(self.home.path / "snapshots")):
                log.info("%s", line)
        except Exception as exc:
            log.warning("stale snapshot cleanup: %s", exc)


def run(home: AgentHome) -> int:
    daemon = Daemon(home)

    async def main():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, daemon.stop)
        await daemon.run()

    asyncio.run(main())
    return 0
