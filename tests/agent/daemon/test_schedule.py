"""The agent's own scheduler: intervals, times of day, windows, catch-up."""

import datetime as dt

from agent.daemon.schedule import in_window, next_run


def at(h, m=0, day=10):
    return dt.datetime(2026, 3, day, h, m).astimezone().timestamp()


def test_first_run_is_due_at_once():
    due, trigger = next_run({"every_hours": 4}, None, at(9))
    assert due == at(9) and trigger == "schedule"


def test_interval_after_last_run():
    due, trigger = next_run({"every_hours": 4, "catch_up": True}, at(9), at(10))
    assert due == at(13) and trigger == "schedule"


def test_missed_interval_catches_up_now_or_skips():
    due, trigger = next_run({"every_hours": 4, "catch_up": True}, at(1), at(10))
    assert (due, trigger) == (at(10), "catch_up")
    due, trigger = next_run({"every_hours": 4, "catch_up": False}, at(1), at(10))
    assert due == at(13) and trigger == "schedule"  # 1 → 5 → 9 (missed) → 13


def test_times_of_day():
    sched = {"every_hours": None, "times": ["09:00", "13:00"], "catch_up": True}
    due, _ = next_run(sched, at(9, 1), at(10))
    assert due == at(13)
    # The PC slept through 13:00: caught up on wake.
    due, trigger = next_run(sched, at(9, 1), at(15))
    assert (due, trigger) == (at(15), "catch_up")
    due, trigger = next_run({**sched, "catch_up": False}, at(9, 1), at(15))
    assert due == at(9, day=11) and trigger == "schedule"


def test_window_defers_to_its_opening_and_wraps_midnight():
    window = {"start": "20:00", "end": "06:00"}
    assert in_window(dt.datetime(2026, 3, 10, 23, 0), window)
    assert in_window(dt.datetime(2026, 3, 10, 5, 59), window)
    assert not in_window(dt.datetime(2026, 3, 10, 12, 0), window)
    due, _ = next_run({"every_hours": 4, "window": window}, None, at(12))
    assert due == at(20)
