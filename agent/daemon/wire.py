"""The agent's side of the wire: protobuf messages built from the daemon's
state (agent/rpc/agent.proto). Pure functions, so what the agent says can be
read and tested without a stream."""

from __future__ import annotations

import json

from google.protobuf.timestamp_pb2 import Timestamp

from agent.daemon import jobs
from agent.daemon.enroll import host_facts
from agent.daemon.state import State
from agent.rpc import agent_pb2 as pb

PROTOCOL = pb.PROTOCOL_VERSION_1

#: what a heartbeat says the agent is doing while a job of each kind runs
_BUSY = {"backup": "backing_up", "restore": "restoring", "verify": "verifying"}


def timestamp(epoch: float | None) -> Timestamp:
    t = Timestamp()
    if epoch:
        t.FromSeconds(int(epoch))
    return t


def hello(state: State) -> pb.AgentMessage:
    """The first message of every stream: who we are, the policy revision we
    run, and the commands running or handled lately (so none runs twice)."""
    running = state.running_commands()
    return pb.AgentMessage(
        hello=pb.Hello(
            host=host_facts(),
            policy_revision=state.policy_revision,
            protocol_version=str(PROTOCOL),
            protocol=PROTOCOL,
            pending_command_ids=running,
            handled_command_ids=[c for c in state.recent_commands(200) if c not in running],
        )
    )


def agent_state(current: jobs.JobContext | None, pause_reason: str) -> str:
    if current is not None:
        return _BUSY.get(current.kind, "busy")
    return "paused" if pause_reason else "idle"


def progress(ctx: jobs.JobContext) -> pb.JobProgress:
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
        started_at=timestamp(ctx.started),
    )


def job_result(
    ctx: jobs.JobContext, outcome: jobs.JobOutcome, finished: float, policy_revision: str
) -> pb.JobResult:
    stats = dict(outcome.stats)
    return pb.JobResult(
        job_id=ctx.job_id,
        command_id=ctx.command_id,
        kind=ctx.kind,
        trigger=ctx.trigger,
        state=outcome.state,
        started_at=timestamp(ctx.started),
        finished_at=timestamp(finished),
        snapshot_id=outcome.snapshot_id,
        error=outcome.error[:5000],
        warnings=outcome.warnings[:1000],
        stats_json=json.dumps(stats, default=str),
        policy_revision=policy_revision,
        files_total=int(stats.get("total_files", 0) or 0),
        bytes_added=int(stats.get("bytes_added", 0) or 0),
    )
