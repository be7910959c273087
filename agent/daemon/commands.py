"""Commands from the console, as the agent handles them: acknowledged at
once (accepted or refused with a reason), run at most once per command id
(redeliveries after a reconnect are acknowledged as duplicates), policies
applied only when they load under the typed contract (agent/policy).

``CommandHandling`` is one facet of ``agent.daemon.daemon.Daemon``; it uses
the daemon's ``state``, ``send``, ``current``, ``job_queue`` and ``_wake``.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import time

from agent import policy as contract
from agent.daemon import jobs
from agent.rpc import agent_pb2 as pb

log = logging.getLogger("cairn.agent")

JOB_KINDS = ("backup", "restore", "verify")


class CommandHandling:
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
        elif kind == "apply_policy":
            self._apply_policy(cid, msg.apply_policy)
        elif kind == "cancel":
            target = msg.cancel.job_command_id
            if self.current is not None and self.current.command_id == target:
                self.current.cancel.set()
            self._ack(cid, True)
        elif kind == "run_job":
            self._run_job_command(cid, msg.run_job)

    def _run_job_command(self, cid: str, run_job: pb.RunJob) -> None:
        if not self.state.command_received(cid, run_job.kind):
            # A redelivery (e.g. after a reconnect): accepted once already.
            self._ack(cid, True, "duplicate")
            return
        try:
            args = json.loads(run_job.args_json or "{}")
        except ValueError:
            args = {}
        if run_job.kind == "takeover":
            self._take_over(cid, args)
            return
        if run_job.kind not in JOB_KINDS:
            self.state.command_finished(cid, "failed")
            self._ack(cid, False, f"unknown job kind {run_job.kind!r}")
            return
        self._ack(cid, True)
        ctx = jobs.JobContext.new(run_job.kind, "manual", command_id=cid, args=args)
        self.job_queue.put_nowait(ctx)

    def _take_over(self, cid: str, args: dict) -> None:
        """This device takes over a replaced one (console/restore/takeover.py):
        its repository now holds the old device's history, opened from now on
        with the key the command carries (kept 0600 like the one it replaces;
        never logged). The local repository cache is dropped."""
        try:
            key = base64.b64decode(str(args.get("key", "")), validate=True)
        except ValueError:
            key = b""
        if len(key) != 32:
            self.state.command_finished(cid, "failed")
            self._ack(cid, False, "the takeover command carries no usable key")
            return
        self.home.keys.put("repo.key", key)
        shutil.rmtree(self.home.cache_dir, ignore_errors=True)
        self.state.command_finished(cid, "succeeded")
        log.info("took over device %s", str(args.get("old_device", ""))[:64])
        self._ack(cid, True)

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
