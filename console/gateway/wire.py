"""The console's side of the wire: protobuf messages built from domain rows
and values (agent/rpc/agent.proto), and timestamps both ways."""

from __future__ import annotations

import datetime as dt
import json

from google.protobuf.timestamp_pb2 import Timestamp

from agent.policy import Policy
from agent.rpc import agent_pb2 as pb
from console.restore import onto

PROTOCOL = pb.PROTOCOL_VERSION_1
#: command id of a policy push no Command row asked for (drift, rollout)
POLICY_PREFIX = "policy:"


def timestamp(value: dt.datetime | None) -> Timestamp:
    t = Timestamp()
    if value is not None:
        t.FromDatetime(value)
    return t


def from_timestamp(t) -> dt.datetime | None:
    if t is None or (not t.seconds and not t.nanos):
        return None
    return t.ToDatetime(tzinfo=dt.UTC)


def presigned(key: str, url: str, headers: dict) -> pb.PresignedUrl:
    return pb.PresignedUrl(object_key=key, url=url, headers=headers)


def command_message(cmd) -> pb.ConsoleMessage:
    """The wire form of a Command row (apply_policy is built by the caller)."""
    msg = pb.ConsoleMessage(command_id=str(cmd.id))
    if cmd.expires_at:
        msg.expires_at.CopyFrom(timestamp(cmd.expires_at))
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
        # a restore onto another device: its one-time key is opened only here
        msg.run_job.args_json = json.dumps(onto.wire_args(payload, str(cmd.device_id)))
    return msg


def policy_message(digest: str, policy: Policy, command_id: str = "") -> pb.ConsoleMessage:
    return pb.ConsoleMessage(
        command_id=command_id or f"{POLICY_PREFIX}{digest}",
        apply_policy=pb.ApplyPolicy(revision=digest, policy_json=policy.canonical_json()),
    )
