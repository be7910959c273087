"""The agent takes a policy through the contract: an apply-policy payload is
loaded (refused by field when unusable, the revision left as it was), what
it stores reads back typed, and a revision stored before a field existed
still drives the scheduler."""

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace

from agent import policy
from agent.daemon import daemon as daemon_mod
from agent.daemon import schedule
from agent.daemon.jobs import current_policy
from agent.daemon.state import State
from agent.rpc import agent_pb2 as pb

SHAPES = json.loads((Path(__file__).parents[1] / "fixtures" / "policy_shapes.json").read_text())


def fake_daemon(state: State):
    acks: list[tuple[str, bool, str]] = []
    fake = SimpleNamespace(
        state=state,
        _wake=asyncio.Event(),
        _ack=lambda cid, ok, reason="": acks.append((cid, ok, reason)),
        _send_heartbeat=lambda: None,
    )
    return fake, acks


def apply(fake, revision: str, payload: str) -> None:
    daemon_mod.Daemon._apply_policy(
        fake, "c1", pb.ApplyPolicy(revision=revision, policy_json=payload)
    )


def test_a_policy_is_applied_and_read_back_typed(tmp_path):
    state = State(tmp_path / "s.db")
    fake, acks = fake_daemon(state)
    sent = policy.parse(SHAPES["demo:Field staff — metered links"]["stored"])
    apply(fake, sent.canonical_hash(), sent.canonical_json())
    assert acks == [("c1", True, "")]
    assert state.policy_revision == sent.canonical_hash()
    assert current_policy(state) == sent
    assert current_policy(state).limits.upload_kbps == 4000


def test_an_unusable_policy_is_refused_by_field_and_the_old_one_kept(tmp_path):
    state = State(tmp_path / "s.db")
    state.apply_policy("rev-1", policy.default_policy().to_dict())
    fake, acks = fake_daemon(state)
    bad = policy.default_policy().to_dict()
    bad["limits"]["cpu_percent"] = 400
    apply(fake, "rev-2", json.dumps(bad))
    [(cid, ok, reason)] = acks
    assert not ok and "limits.cpu_percent" in reason and "between 0 and 100" in reason
    apply(fake, "rev-3", "{not json")
    assert acks[-1] == ("c1", False, "policy is not valid JSON")
    assert state.policy_revision == "rev-1"


def test_a_revision_stored_before_cpu_percent_drives_the_agent(tmp_path):
    legacy = SHAPES["legacy:before cpu_percent (96c4f38..2afba2f)"]["stored"]
    state = State(tmp_path / "s.db")
    state.apply_policy("old", legacy)
    loaded = current_policy(state)
    assert loaded.limits.cpu_ceiling == 0 and loaded.canonical_hash() != ""
    due, trigger = schedule.next_run(loaded.schedule, time.time() - 5 * 3600, time.time())
    assert trigger == "catch_up" and due <= time.time() + 1


def test_no_policy_yet(tmp_path):
    assert current_policy(State(tmp_path / "s.db")) is None


def test_a_stored_policy_nobody_can_read_is_no_policy(tmp_path):
    state = State(tmp_path / "s.db")
    state.apply_policy("x", {"limits": {"upload_kbps": "fast"}})
    assert current_policy(state) is None
