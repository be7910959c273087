"""Running jobs in the daemon: the scheduler that queues policy backups, the
single worker that runs queued jobs (backup, restore, verify) in a thread
with live progress on the stream and results through the durable outbox, the
repository each job opens (throttled and pausable per the policy), and the
lease of offline upload slots that lets a backup reach storage while the
gateway is down (agent/daemon/offline.py).

Backups run on the policy's schedule by the agent itself, whether or not the
console is reachable (storage must be); a slot missed while the PC was off
runs on wake-up when the policy says catch up.

``JobRunning`` is one facet of ``agent.daemon.daemon.Daemon``; it uses the
daemon's ``home``, ``identity``, ``state``, ``offline``, ``tick``, ``send``,
``report`` and ``stub``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time

from agent import power
from agent.daemon import jobs, schedule, wire
from agent.daemon import repo as repo_glue
from agent.daemon.jobs import current_policy
from agent.daemon.offline import SpoolLease
from agent.engine.store.throttle import ThrottledStore, TokenBucket
from agent.priority import background
from agent.rpc import agent_pb2 as pb

log = logging.getLogger("cairn.agent")

#: offline upload slots asked for per lease: 16 GiB of 16 MiB packs (the
#: gateway may give fewer, CAIRN_SPOOL_LEASE_SLOTS)
OFFLINE_SLOTS = 1024
#: after a refused or failed lease, ask again no sooner than this
LEASE_RETRY_SECONDS = 3600


class JobRunning:
    current: jobs.JobContext | None
    pause_reason: str

    # -- scheduler ---------------------------------------------------------------
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
                    self.pause_reason = self._pause_check()
                    if not self.pause_reason:
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

    # -- the job worker ------------------------------------------------------------
    async def _job_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            ctx: jobs.JobContext = await self.job_queue.get()
            self.current = ctx
            ctx.on_progress = lambda _p, ctx=ctx: loop.call_soon_threadsafe(self._on_progress, ctx)
            self.state.job_started(ctx.job_id, ctx.kind, ctx.command_id, ctx.trigger)
            self.send(pb.AgentMessage(report=pb.Report(progress=wire.progress(ctx))))
            log.info("%s started (%s)", ctx.kind, ctx.trigger)
            try:
                outcome = await asyncio.to_thread(self._run_job, ctx)
            except Exception as exc:
                log.exception("%s failed", ctx.kind)
                outcome = jobs.JobOutcome("failed", error=f"{type(exc).__name__}: {exc}")
            self._job_done(ctx, outcome)
            self.current = None
            self._send_heartbeat()
            self.write_status()
            self._wake.set()

    def _job_done(self, ctx: jobs.JobContext, outcome: jobs.JobOutcome) -> None:
        """Record the outcome locally, then report it (durably, via the outbox)."""
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
        result = wire.job_result(ctx, outcome, finished, self.state.policy_revision)
        self.report(f"result:{ctx.job_id}", pb.Report(result=result))
        log.info("%s %s %s", ctx.kind, outcome.state, outcome.snapshot_id or outcome.error)

    def _on_progress(self, ctx: jobs.JobContext) -> None:
        if self.current is ctx:
            self.send(pb.AgentMessage(report=pb.Report(progress=wire.progress(ctx))))

    def _run_job(self, ctx: jobs.JobContext) -> jobs.JobOutcome:
        policy = current_policy(self.state) or jobs.NO_POLICY
        if policy.limits.background_priority:
            # Never raises: what could not be lowered is in the report.
            log.debug("background priority: %s", background().describe())
        if ctx.kind == "restore" and ctx.args.get("source_device"):
            return self._restore_onto(ctx)
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

    def _restore_onto(self, ctx: jobs.JobContext) -> jobs.JobOutcome:
        """Another device's snapshot onto this one (issue 11): its repository
        opened with the command's one-time key (taken out of the arguments at
        once, never logged or reported) through read grants of the source
        prefix under the command's restore access."""
        args = ctx.args
        try:
            key = base64.b64decode(args.pop("key", ""), validate=True)
            access = int(args.get("restore_access") or 0)
        except (ValueError, TypeError):
            return jobs.JobOutcome("failed", error="the restore command carries no usable key")
        if len(key) != 32 or access <= 0 or not args.get("repository_url"):
            return jobs.JobOutcome("failed", error="the restore command carries no usable key")
        store = repo_glue.open_source_store(
            self.identity, str(args["repository_url"]), access, self.stub()
        )
        try:
            repo = repo_glue.open_repository(store, key)
            return jobs.run_restore_onto(ctx, repo)
        finally:
            with contextlib.suppress(Exception):
                store.close()

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

    # -- offline uploads -------------------------------------------------------------
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
                or time.time() - self._lease_failed_at < LEASE_RETRY_SECONDS
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
