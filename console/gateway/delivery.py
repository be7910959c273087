"""Commands and policies onto open streams: what the gateway writes to an
agent, whether it came from Celery (Redis pub/sub), the periodic sweep or a
reconnect's backlog. A command already on a stream is not written twice; a
policy the agent runs, or was sent within a minute, is not pushed again.

``CommandDelivery`` is one facet of ``console.gateway.server.Gateway``; it
uses the gateway's ``sessions``, ``db``, ``spec_cache`` and the batches of
``console/gateway/batching.py`` (``acks``, ``policy_acks``, ``to_deliver``,
``work``).
"""

from __future__ import annotations

import logging

import grpc

from console.gateway import wire
from console.gateway.services import policy
from console.gateway.session import Session
from console.jobs import commands

log = logging.getLogger("cairn.gateway")

#: distinct effective policies cached by hash before the cache starts over
SPEC_CACHE_SIZE = 256


class CommandDelivery:
    async def _effective(self, device_id: str, digest: str = ""):
        """(hash, Policy) of a device's effective policy. A policy is fully
        determined by its hash, so specs are cached by hash: a rollout to
        10,000 devices computes the merge once, not 10,000 times."""
        if digest and digest in self.spec_cache:
            return digest, self.spec_cache[digest]
        eff = await self.db(policy.effective, device_id)
        if eff is not None:
            if len(self.spec_cache) > SPEC_CACHE_SIZE:
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
            if session.applied == eff[0] or session.sent_recently(eff[0]):
                # The agent runs (or was just sent) this revision: its policy
                # acknowledgement completes the command; no second push.
                if session.applied == eff[0]:
                    self.policy_acks.setdefault(eff[0], set()).add(session.device_id)
                    self.work.set()
                return True
            msg = wire.policy_message(eff[0], eff[1], command_id=str(cmd.id))
            session.mark_policy_sent(eff[0])
        else:
            msg = wire.command_message(cmd)
            session.sent[str(cmd.id)] = ""
        session.send(msg)
        self.delivered[cmd.kind] = self.delivered.get(cmd.kind, 0) + 1
        if mark:
            await self.db(commands.mark_sent, [cmd.id])
        return True

    async def _deliver_all(self, pairs) -> None:
        """Deliver (session, command) pairs, then mark those sent in one UPDATE."""
        sent = []
        for session, cmd in pairs:
            if await self._deliver(session, cmd, mark=False):
                sent.append(cmd.pk)
        if sent:
            await self.db(commands.mark_sent, sent)

    async def _deliver_many(self, items) -> None:
        """Pub/sub deliveries, batched: one query loads the commands, one
        UPDATE marks them sent."""
        by_id = {c: d for d, c in items}
        pairs = []
        for cmd in await self.db(commands.get_many, list(by_id)):
            session = self.sessions.get(str(cmd.device_id))
            if session is None or str(cmd.device_id) != str(by_id.get(str(cmd.pk))):
                continue
            if cmd.state in ("pending", "sent"):
                pairs.append((session, cmd))
        await self._deliver_all(pairs)

    async def _push_policy(self, session: Session, force: bool = False, digest: str = "") -> None:
        """Send the effective policy unless the agent runs it or was sent it
        within a minute. ``digest`` (the device's effective hash, when the
        caller knows it) lets the spec come from the cache."""
        known = digest == session.applied or session.sent_recently(digest)
        if digest and not force and known:
            return  # settled without a query
        eff = await self._effective(session.device_id, digest)
        if eff is None:
            return
        digest, spec = eff
        if digest == session.applied:
            return
        if not force and session.sent_recently(digest):
            return
        session.mark_policy_sent(digest)
        session.send(wire.policy_message(digest, spec))
        self.delivered["policy_push"] = self.delivered.get("policy_push", 0) + 1

    async def on_message(self, message: dict) -> None:
        """A message from Celery (Redis pub/sub) for a device this instance holds."""
        kind = message.get("type")
        device_id = str(message.get("device", ""))
        session = self.sessions.get(device_id)
        if session is None:
            return
        if kind == "revoke":
            session.close(grpc.StatusCode.PERMISSION_DENIED, "device revoked")
        elif kind == "command":
            self.to_deliver.append((device_id, str(message.get("command", ""))))
            self.work.set()
        elif kind == "policy":
            await self._push_policy(session)
