"""Writes in batches: what thousands of streams report is buffered in memory
and written with a handful of statements per round, not one per message.

* heartbeats, stream openings and live progress: flushed every
  ``GATEWAY_HEARTBEAT_FLUSH_SECONDS`` (failed rounds are merged back and
  retried);
* deliveries from pub/sub and command/policy acknowledgements: as soon as a
  burst has gathered (50 ms);
* a periodic sweep from the database: revoked devices' streams closed,
  commands pending too long re-sent, drifted policies pushed.

``BatchedWrites`` is one facet of ``console.gateway.server.Gateway``; the
buffers it drains (``heartbeats``, ``opened``, ``progress``, ``to_deliver``,
``acks``, ``policy_acks``) are filled by the stream (console/gateway/stream.py)
and by delivery (console/gateway/delivery.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import grpc

from console.gateway import conf
from console.gateway.services import connections, identity, reports
from console.jobs import commands
from console.policies import services as policies
from console.restore import takeover

log = logging.getLogger("cairn.gateway")

#: deliveries loaded and marked per statement
DELIVERY_BATCH = 500


class BatchedWrites:
    async def _flush_loop(self) -> None:
        interval = conf.heartbeat_flush_seconds()
        stats_every = float(os.environ.get("CAIRN_GATEWAY_STATS_SECONDS", "60"))
        last_register = last_stats = 0.0
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - last_stats >= stats_every:
                last_stats = time.monotonic()
                self._log_stats()
            await self._flush()
            if time.monotonic() - last_register > self.registry.ttl / 3:
                try:
                    await self.registry.alive()
                    await self.registry.register(list(self.sessions))
                    last_register = time.monotonic()
                except Exception as exc:
                    log.warning("registry refresh failed: %s", exc)

    def _log_stats(self) -> None:
        log.info(
            "stats streams=%d heartbeats=%d reports=%d opened=%d flush_pending=%d",
            len(self.sessions),
            self.stats["heartbeats"],
            self.stats["reports"],
            self.stats["streams_opened"],
            len(self.heartbeats),
        )

    async def _flush(self) -> None:
        """One round: progress, Redis routing of new streams, then online
        rows and heartbeats in one transaction (merged back on failure)."""
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
                for i in range(0, len(deliver), DELIVERY_BATCH):
                    await self._deliver_many(deliver[i : i + DELIVERY_BATCH])
                if acks or policy_acks:
                    await self.db(commands.acknowledge_many, acks, policy_acks)
                if acks:  # a replacement that took its key gets its groups (issue 11)
                    await self.db(takeover.finish_acknowledged, acks)
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
        pending = await self.db(commands.pending_for_devices, held, conf.sweep_seconds())
        pairs = []
        for cmd in pending:
            session = self.sessions.get(str(cmd.device_id))
            if session is not None:
                pairs.append((session, cmd))
        await self._deliver_all(pairs)
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
        """Stop the loops and write what is still buffered: acknowledgements,
        heartbeats, and every stream this instance held as closed."""
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
