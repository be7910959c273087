"""`agent run`: the long-running agent.

Three cooperating parts on one asyncio loop:

* **connection**: one bidirectional ``Connect`` stream to the gateway over
  mutual TLS, reopened with exponential backoff and full jitter (1 s doubling
  to 5 min) whenever it drops - the gateway restarting, the network gone for
  hours, the PC asleep. On every (re)connect the agent says Hello (its policy
  revision, the commands it is running or handled recently) and replays its
  outbox.
* **scheduler**: backups run on the policy's schedule by the agent itself,
  whether or not the console is reachable (storage must be); a slot missed
  while the PC was off runs on wake-up when the policy says catch up.
* **jobs**: one at a time in a worker thread (backup, restore, verify), with
  live progress on the stream, results through the durable outbox.

A device the gateway refuses (revoked) stops trying quickly: it keeps
retrying every few minutes at most (an admin can un-revoke by re-enrolling)
and reports "refused" in ``agent status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import random
import time

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from agent import policy as contract
from agent import power
from agent.daemon import channel, jobs, schedule
from agent.daemon import repo as repo_glue
from agent.daemon.enroll import host_facts
from agent.daemon.home import AgentHome, write_private
from agent.daemon.offline import OfflineSupport, SpoolLease
from agent.daemon.state import State
from agent.engine.store.throttle import ThrottledStore, TokenBucket
from agent.priority import background
from agent.rpc import agent_pb2 as pb
from agent.rpc import agent_pb2_grpc as pb_grpc
from agent.snapshots.chooser import cleanup_stale_snapshots

log = logging.getLogger("cairn.agent")

PROTOCOL = pb.PROTOCOL_VERSION_1
BACKOFF_MIN = 1.0
BACKOFF_MAX = 300.0
REFUSED_RETRY = 300.0
#: offline upload slots asked for per lease: 16 GiB of 16 MiB packs (the
#: gateway may give fewer, CAIRN_SPOOL_LEASE_SLOTS)
OFFLINE_SLOTS = 1024


def _ts(epoch: float | None) -> Timestamp:
    t = Timestamp()
    if epoch:
        t.FromSeconds(int(epoch))
    return t


def current_policy(state: State) -> contract.Policy | None:
    """The applied policy, typed (None before the first one arrives)."""
    stored = state.policy
    if not stored:
        return None
    try:
        return contract.load(stored)
    except contract.PolicyError as exc:  # written by an older agent, now unreadable
        log.warning("the stored policy cannot be used: %s", exc)
        return None


def backoff_delay(attempt: int, base: float = BACKOFF_MIN, cap: float = BACKOFF_MAX) -> float:
    """Full jitter: uniform in [base/2, min(cap, base * 2**attempt)]."""
    ceiling = min(cap, base * (2 ** min(attempt, 20)))
    return random.uniform(base / 2, max(base / 2, ceiling))


class Daemon:
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

    # -- helpers ---------------------------------------------------------------------
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

    # -- main ----------------------------------------------------------------------------
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
        await self.stop_event.wait()
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
                finished_at=_ts(time.time()),
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

    # -- connection ------------------------------------------------------------------------
    async def _maybe_renew(self) -> None:
        """Renew the device certificate when it nears expiry (30 days)."""
        from agent.daemon import enroll as enrolment

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
                code = exc.code()
                self.last_error = f"{code.name}: {exc.details()}"
                if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                    self.connection_state = "refused"
                    log.error("the gateway refuses this device: %s", exc.details())
                    delay = REFUSED_RETRY
                else:
                    self.connection_state = "disconnected"
                    log.warning("connection lost: %s", self.last_error)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connection_state = "disconnected"
                self.last_error = str(exc)
                log.exception("connection error")
            finally:
                self.connected = False
                self.outgoing = None
            if time.monotonic() - started > 60:
                attempt = 0  # it was a good connection: start the backoff over
            if delay is None:
                delay = backoff_delay(attempt)
                attempt += 1
            self.state.set("next_connect_at", time.time() + delay)
            self.write_status()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=delay)

    def _hello(self) -> pb.AgentMessage:
        running = self.state.running_commands()
        return pb.AgentMessage(
            hello=pb.Hello(
                host=host_facts(),
                policy_revision=self.state.policy_revision,
                protocol_version=str(PROTOCOL),
                protocol=PROTOCOL,
                pending_command_ids=running,
                handled_command_ids=[
                    c for c in self.state.recent_commands(200) if c not in running
                ],
            )
        )

    async def _session(self) -> None:
        self.connection_state = "connecting"
        async with channel.aio_channel(
            self.identity.gateway_address, self.creds, self.identity.server_name
        ) as ch:
            stub = pb_grpc.AgentGatewayStub(ch)
            outgoing: asyncio.Queue = asyncio.Queue()
            outgoing.put_nowait(self._hello())

            async def requests():
                while True:
                    msg = await outgoing.get()
                    if msg is None:
                        return
                    yield msg

            call = stub.Connect(requests())
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
            # Replay the outbox (reports not yet acknowledged), oldest first.
            for key, payload in self.state.outbox_pending(10_000):
                report = pb.Report()
                report.ParseFromString(payload)
                report.idempotency_key = key
                outgoing.put_nowait(pb.AgentMessage(report=report))
            self._send_heartbeat()
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

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            self._send_heartbeat()

    def _progress_pb(self, ctx: jobs.JobContext) -> pb.JobProgress:
        p = ctx.progress
        return pb.JobProgress(
            job_id=ctx.job_id,
            command_id=ctx.command_id,
            kind=ctx.kind,
            trigger=ctx.trigger,
            files_done=int(p.get("files_done", 0)),
            files_total=int(p.get("files_total", 0) or 0),
            bytes_done=int(p.get("bytes_done", 0)),
            bytes_total=int(p.get("bytes_total", 0) or 0),
            percent=float(p.get("percent", 0.0)),
            current_path=str(p.get("current_path", ""))[-300:],
            started_at=_ts(ctx.started),
        )

    def _send_heartbeat(self) -> None:
        hb = pb.Heartbeat(
            at=_ts(time.time()),
            policy_revision=self.state.policy_revision,
            state=self._agent_state(),
            pause_reason=self.pause_reason,
            last_backup_at=_ts(self.state.get("last_backup_finished")),
            next_backup_at=_ts(self.state.get("next_backup_at")),
            outbox_size=self.state.outbox_size(),
        )
        if self.current is not None:
            hb.current.CopyFrom(self._progress_pb(self.current))
        self.send(pb.AgentMessage(heartbeat=hb))

    def _agent_state(self) -> str:
        if self.current is not None:
            return {"backup": "backing_up", "restore": "restoring", "verify": "verifying"}.get(
                self.current.kind, "busy"
            )
        return "paused" if self.pause_reason else "idle"

    # -- console → agent ---------------------------------------------------------------------
    def _ack(self, command_id: str, accepted: bool, reason: str = "") -> None:
        self.send(
            pb.AgentMessage(
                ack=pb.CommandAck(command_id=command_id, accepted=accepted, reason=reason)
            )
        )

    async def _on_console_message(self, msg: pb.ConsoleMessage) -> None:
        kind = msg.WhichOneof("body")
        if kind == "report_ack":
            self.state.outbox_remove(msg.report_ack.accepted_keys)
            return
        if kind in ("ping", "welcome", None):
            return
        cid = msg.command_id
        if (
            msg.HasField("expires_at")
            and msg.expires_at.seconds
            and msg.expires_at.ToSeconds() < time.time()
        ):
            self._ack(cid, False, "expired")
            return
        if kind == "apply_policy":
            self._apply_policy(cid, msg.apply_policy)
            return
        if kind == "cancel":
            target = msg.cancel.job_command_id
            if self.current is not None and self.current.command_id == target:
                self.current.cancel.set()
            self._ack(cid, True)
            return
        if kind == "run_job":
            if not self.state.command_received(cid, msg.run_job.kind):
                # A redelivery (e.g. after a reconnect): accepted once already.
                self._ack(cid, True, "duplicate")
                return
            try:
                args = json.loads(msg.run_job.args_json or "{}")
            except ValueError:
                args = {}
            if msg.run_job.kind not in ("backup", "restore", "verify"):
                self.state.command_finished(cid, "failed")
                self._ack(cid, False, f"unknown job kind {msg.run_job.kind!r}")
                return
            self._ack(cid, True)
            ctx = jobs.JobContext.new(msg.run_job.kind, "manual", command_id=cid, args=args)
            self.job_queue.put_nowait(ctx)

    def _apply_policy(self, command_id: str, ap: pb.ApplyPolicy) -> None:
        try:
            policy = contract.load(json.loads(ap.policy_json))
        except contract.PolicyError as exc:
            self._ack(command_id, False, f"policy refused: {exc}"[:500])
            return
        except ValueError:
            self._ack(command_id, False, "policy is not valid JSON")
            return
        changed = ap.revision != self.state.policy_revision
        if changed:
            self.state.apply_policy(ap.revision, policy.to_dict())
            log.info("applied policy revision %s", ap.revision[:12])
            self._wake.set()  # reschedule now
        self._ack(command_id, True)
        self._send_heartbeat()

    # -- scheduler ------------------------------------------------------------------------------
    def _compute_next(self) -> tuple[float, str] | None:
        policy = current_policy(self.state)
        if policy is None:
            return None
        last = self.state.get("last_scheduled_start")
        return schedule.next_run(policy.schedule, last, time.time())

    async def _scheduler_loop(self) -> None:
        while True:
            nxt = self._compute_next()
            if nxt is not None:
                due, trigger = nxt
                self.state.set("next_backup_at", due)
                busy = self.current is not None or not self.job_queue.empty()
                if due <= time.time() and not busy:
                    reason = self._pause_check()
                    if reason:
                        self.pause_reason = reason
                    else:
                        self.pause_reason = ""
                        self.state.set("last_scheduled_start", time.time())
                        self.job_queue.put_nowait(jobs.JobContext.new("backup", trigger))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.tick)

    def _pause_check(self) -> str:
        """Why a scheduled backup must wait now ('' = go), from agent/power.py."""
        policy = current_policy(self.state)
        if policy is None:
            return ""
        limits = policy.limits
        try:
            return (
                power.pause_reason(
                    pause_on_battery=limits.pause_on_battery,
                    pause_on_metered=limits.pause_on_metered,
                )
                or ""
            )
        except Exception as exc:
            log.debug("pause check failed: %s", exc)
            return ""

    # -- jobs ---------------------------------------------------------------------------------------
    async def _job_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            ctx: jobs.JobContext = await self.job_queue.get()
            self.current = ctx
            ctx.on_progress = lambda _p, ctx=ctx: loop.call_soon_threadsafe(self._on_progress, ctx)
            self.state.job_started(ctx.job_id, ctx.kind, ctx.command_id, ctx.trigger)
            self.send(pb.AgentMessage(report=pb.Report(progress=self._progress_pb(ctx))))
            log.info("%s started (%s)", ctx.kind, ctx.trigger)
            try:
                outcome = await asyncio.to_thread(self._run_job, ctx)
            except Exception as exc:
                log.exception("%s failed", ctx.kind)
                outcome = jobs.JobOutcome("failed", error=f"{type(exc).__name__}: {exc}")
            finished = time.time()
            self.state.job_finished(
                ctx.job_id,
                outcome.state,
                outcome.snapshot_id,
                outcome.error,
                outcome.stats,
                outcome.warnings,
            )
            if ctx.kind == "backup":
                self.state.set("last_backup_finished", finished)
                self.state.set("last_backup_state", outcome.state)
                if outcome.state in ("succeeded", "partial"):
                    self.state.set("last_backup_success", finished)
            if ctx.command_id:
                self.state.command_finished(ctx.command_id, outcome.state)
            stats = dict(outcome.stats)
            result = pb.JobResult(
                job_id=ctx.job_id,
                command_id=ctx.command_id,
                kind=ctx.kind,
                trigger=ctx.trigger,
                state=outcome.state,
                started_at=_ts(ctx.started),
                finished_at=_ts(finished),
                snapshot_id=outcome.snapshot_id,
                error=outcome.error[:5000],
                warnings=outcome.warnings[:1000],
                stats_json=json.dumps(stats, default=str),
                policy_revision=self.state.policy_revision,
                files_total=int(stats.get("total_files", 0) or 0),
                bytes_added=int(stats.get("bytes_added", 0) or 0),
            )
            self.report(f"result:{ctx.job_id}", pb.Report(result=result))
            log.info("%s %s %s", ctx.kind, outcome.state, outcome.snapshot_id or outcome.error)
            self.current = None
            self._send_heartbeat()
            self.write_status()
            self._wake.set()

    def _on_progress(self, ctx: jobs.JobContext) -> None:
        if self.current is ctx:
            self.send(pb.AgentMessage(report=pb.Report(progress=self._progress_pb(ctx))))

    def _open_repo(self, ctx: jobs.JobContext | None = None):
        store = repo_glue.open_device_store(self.identity, self.stub(), self.offline)
        policy = current_policy(self.state)
        limits = policy.limits if policy is not None else None
        backup = ctx is None or ctx.kind == "backup"
        if limits is not None and (limits.upload_kbps or limits.pauses) and backup:
            # Uploads go through the policy's bandwidth limit, and stop while
            # on battery / a metered network (agent/power.py), resuming alone.
            gate = None
            if limits.pauses:
                gate = power.PauseGate(
                    pause_on_battery=limits.pause_on_battery,
                    pause_on_metered=limits.pause_on_metered,
                )
            store = ThrottledStore(
                store,
                TokenBucket(limits.upload_bytes_per_second),
                gate=gate,
                cancel=ctx.cancel if ctx is not None else None,
            )
        return repo_glue.open_repository(store, self.home.repository_key(), self._cache_dir())

    def _cache_dir(self):
        # Only worth it (and only needed offline) when storage is remote.
        return self.home.cache_dir if self.offline is not None else None

    # -- offline uploads ----------------------------------------------------------------------
    async def _lease_loop(self) -> None:
        """Keep a lease of offline upload slots, renewed while connected and
        idle (agent/daemon/offline.py)."""
        while True:
            await asyncio.sleep(max(self.tick, 1.0) * 5)
            if (
                self.offline is None
                or not self.connected
                or self.current is not None
                or not self.offline.renewal_due()
                or time.time() - self._lease_failed_at < 3600
            ):
                continue
            try:
                await asyncio.to_thread(self.renew_offline_lease)
            except Exception as exc:
                self._lease_failed_at = time.time()
                log.warning("no offline upload lease: %s", exc)

    def renew_offline_lease(self) -> None:
        """Lease fresh slots, then refresh the repository view they rely on;
        the lease is used only once the view is at least as new as it."""
        lease = self.stub().LeaseSpool(pb.SpoolLeaseRequest(slots=OFFLINE_SLOTS), timeout=60)
        self.offline.replace_lease(SpoolLease.from_pb(lease))
        store = repo_glue.open_device_store(self.identity, self.stub(), self.offline)
        try:
            repo = repo_glue.open_repository(store, self.home.repository_key(), self._cache_dir())
            repo.snapshots()  # listed and cached: an offline run picks its parent
            if store.gateway_down:
                raise ConnectionError("the gateway went away while the view was refreshed")
        finally:
            store.close()
        self.offline.arm()
        log.info("offline upload lease: %d slots", len(lease.slots))

    def _run_job(self, ctx: jobs.JobContext) -> jobs.JobOutcome:
        policy = current_policy(self.state) or jobs.NO_POLICY
        if policy.limits.background_priority:
            # Never raises: what could not be lowered is in the report.
            log.debug("background priority: %s", background().describe())
        repo = self._open_repo(ctx)
        try:
            if ctx.kind == "backup":
                outcome = jobs.run_backup(
                    ctx, repo, policy, state_dir=str(self.home.path / "snapshots")
                )
                # The console promotes what waits in the spool when it sees this.
                spooled = repo.store.spooled_objects
                if spooled:
                    outcome.stats["spooled_objects"] = spooled
                return outcome
            if ctx.kind == "restore":
                return jobs.run_restore(ctx, repo)
            if ctx.kind == "verify":
                return jobs.run_verify(ctx, repo)
            return jobs.JobOutcome("failed", error=f"unknown job kind {ctx.kind}")
        finally:
            with contextlib.suppress(Exception):
                repo.store.close()

    # -- status -------------------------------------------------------------------------------------
    async def _status_loop(self) -> None:
        while True:
            self.write_status()
            await asyncio.sleep(2)

    def write_status(self) -> None:
        policy_revision = self.state.policy_revision
        status = {
            "device_id": self.identity.device_id,
            "gateway": self.identity.gateway_address,
            "connection": self.connection_state,
            "gateway_id": self.gateway_id,
            "last_error": self.last_error,
            "policy_revision": policy_revision,
            "last_backup_at": self.state.get("last_backup_finished"),
            "last_backup_state": self.state.get("last_backup_state"),
            "last_success_at": self.state.get("last_backup_success"),
            "next_backup_at": self.state.get("next_backup_at"),
            "pause_reason": self.pause_reason,
            "outbox": self.state.outbox_size(),
            "offline": self.offline.describe() if self.offline is not None else None,
            "current": None
            if self.current is None
            else {
                "kind": self.current.kind,
                "trigger": self.current.trigger,
                "command_id": self.current.command_id,
                "started_at": self.current.started,
                **self.current.progress,
            },
            "pid": 0 if self.stopped else os.getpid(),
            "updated_at": time.time(),
        }
        try:
            write_private(self.home.status_file, json.dumps(status, indent=1).encode())
        except OSError as exc:
            log.debug("status file: %s", exc)


def run(home: AgentHome) -> int:
    import signal

    daemon = Daemon(home)

    async def main():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, daemon.stop)
        await daemon.run()

    asyncio.run(main())
    return 0


def format_status(home: AgentHome) -> str:
    """What `agent status` prints."""
    try:
        data = json.loads(home.status_file.read_text())
    except (OSError, ValueError):
        data = {}
    identity = None
    with contextlib.suppress(Exception):
        identity = home.load_identity()
    if identity is None:
        return f"not enrolled (home: {home.path})"
    state = State(home.state_db)
    try:
        jobs_ = state.jobs(1)
        revision = state.policy_revision
        outbox = state.outbox_size()
        last_ok = state.get("last_backup_success")
        last = state.get("last_backup_finished")
        last_state = state.get("last_backup_state")
        nxt = state.get("next_backup_at")
    finally:
        state.close()

    def when(epoch):
        if not epoch:
            return "never"
        return dt.datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")

    running = False
    pid = data.get("pid")
    if pid:
        try:
            os.kill(pid, 0)
            running = time.time() - data.get("updated_at", 0) < 30
        except OSError:
            running = False
    lines = [
        f"device:          {identity.device_id}",
        f"gateway:         {identity.gateway_address}",
        "agent:           " + (f"running (pid {pid})" if running else "not running"),
        f"connection:      {data.get('connection', 'unknown') if running else 'offline (agent not running)'}"
        + (f" - {data['last_error']}" if running and data.get("last_error") else ""),
        f"policy revision: {revision[:12] if revision else 'none yet'}",
        f"last backup:     {when(last)}" + (f" ({last_state})" if last_state else ""),
        f"last success:    {when(last_ok)}",
        f"next backup:     {when(nxt) if revision else 'when a policy arrives'}",
        f"paused:          {data.get('pause_reason') or 'no'}",
        f"unsent reports:  {outbox}",
    ]
    off = data.get("offline") if running else None
    if off:
        lines.append(
            "offline uploads: "
            + (
                f"{off['slots_left']} objects until {when(off['lease_expires_at'])}"
                if off.get("slots_left")
                else "not available yet"
            )
            + (
                f", {off['waiting_for_promotion']} waiting to be filed"
                if off.get("waiting_for_promotion")
                else ""
            )
        )
    cur = data.get("current") if running else None
    if cur:
        pct = cur.get("percent", 0.0) or 0.0
        lines.append(
            f"current job:     {cur['kind']} ({cur['trigger']}) {pct:.0f}% "
            f"{cur.get('files_done', 0)} files, {cur.get('bytes_done', 0)} bytes"
        )
    else:
        lines.append("current job:     none")
    if jobs_:
        j = jobs_[0]
        lines.append(f"last job:        {j['kind']} {j['state']} {j['snapshot_id'] or j['error']}")
    return "\n".join(lines)
