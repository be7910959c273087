"""The agent's local state: outbox replay, handled commands, job history."""

import stat

from agent.daemon.state import State


def test_outbox_keeps_order_ignores_duplicates_and_survives_restart(tmp_path):
    db = tmp_path / "state.sqlite3"
    s = State(db)
    s.outbox_add("result:1", b"one")
    s.outbox_add("result:2", b"two")
    s.outbox_add("result:1", b"again")  # same key: not queued twice
    s.close()
    s = State(db)
    assert s.outbox_pending() == [("result:1", b"one"), ("result:2", b"two")]
    s.outbox_remove(["result:1"])
    assert s.outbox_size() == 1
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_a_command_is_handled_once(tmp_path):
    s = State(tmp_path / "s.db")
    assert s.command_received("c1", "backup")
    assert not s.command_received("c1", "backup")  # redelivered
    assert s.running_commands() == ["c1"]
    s.command_finished("c1", "succeeded")
    assert s.running_commands() == [] and s.recent_commands() == ["c1"]


def test_policy_and_interrupted_jobs(tmp_path):
    s = State(tmp_path / "s.db")
    s.apply_policy("abc", {"schedule": {"every_hours": 2}})
    assert s.policy_revision == "abc" and s.policy["schedule"]["every_hours"] == 2
    s.job_started("j1", "backup", trigger="schedule")
    assert s.interrupted_jobs() == [{"id": "j1", "command_id": "", "kind": "backup"}]
    s.job_finished("j1", "failed", error="agent stopped")
    assert s.interrupted_jobs() == []
    assert s.jobs()[0]["state"] == "failed"
