"""When the next backup is due, from the policy's schedule and what ran.

The policy's :class:`~agent.policy.Schedule` (agent/policy/schedule.py), e.g.
every 4 hours, or at 09:00 and 13:00 inside a 08:00-18:00 window:

* every N hours: N hours after the last run started (a device that never ran
  is due at once);
* times of day (local time): the next listed time after the last run;
* a window restricts starts to [start, end) local time (may wrap midnight);
* catch up: a slot missed while the PC was off or asleep runs as soon as it
  can; without catch-up the missed slot is skipped and the next one waits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from agent import policy as contract
from agent.policy import Schedule, Window

Local = dt.datetime  # aware datetimes in the machine's local zone


def _local(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts).astimezone()


def _hm(value: str) -> dt.time:
    h, m = value.split(":")
    return dt.time(int(h), int(m))


def as_schedule(schedule: Schedule | Mapping | None) -> Schedule:
    """A typed schedule; a stored ``schedule`` section is read by the contract."""
    if isinstance(schedule, Schedule):
        return schedule
    return contract.load({"schedule": dict(schedule or {})}).schedule


def _as_window(window: Window | Mapping | None) -> Window | None:
    if window is None or isinstance(window, Window):
        return window
    return as_schedule({"every_hours": 1, "window": dict(window)}).window


def in_window(when: dt.datetime, window: Window | Mapping | None) -> bool:
    window = _as_window(window)
    if window is None:
        return True
    start, end, t = _hm(window.start), _hm(window.end), when.time()
    if start < end:
        return start <= t < end
    return t >= start or t < end  # wraps midnight


def next_window_start(when: dt.datetime, window: Window | None) -> dt.datetime:
    """``when`` if inside the window, else the window's next opening."""
    if window is None or in_window(when, window):
        return when
    start = _hm(window.start)
    candidate = when.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if candidate <= when:
        candidate += dt.timedelta(days=1)
    return candidate


def _slots_between(times: tuple[str, ...], after: dt.datetime, until: dt.datetime):
    day = after.date()
    while day <= until.date():
        for t in sorted(times):
            hm = _hm(t)
            slot = dt.datetime.combine(day, hm).astimezone()
            if after < slot <= until:
                yield slot
        day += dt.timedelta(days=1)


def next_run(
    schedule: Schedule | Mapping | None, last_run: float | None, now: float
) -> tuple[float, str]:
    """(epoch seconds when the next backup should start, trigger), where the
    trigger is ``schedule`` or ``catch_up`` (a slot was missed)."""
    schedule = as_schedule(schedule)
    window, catch_up, times = schedule.window, schedule.catch_up, schedule.times
    now_dt = _local(now)
    every = schedule.every_hours
    if every:
        period = dt.timedelta(hours=float(every))
        if last_run is None:
            due = now_dt
            trigger = "schedule"
        else:
            due = _local(last_run) + period
            trigger = "schedule"
            if due < now_dt - dt.timedelta(minutes=1):
                if catch_up:
                    due, trigger = now_dt, "catch_up"
                else:
                    missed = (now_dt - due) // period + 1
                    due = due + period * missed
    else:
        base = _local(last_run) if last_run is not None else now_dt
        horizon = max(now_dt, base) + dt.timedelta(days=2)
        slots = list(_slots_between(times, base, horizon))
        missed = [s for s in slots if s <= now_dt]
        future = [s for s in slots if s > now_dt]
        if missed and catch_up and last_run is not None:
            due, trigger = now_dt, "catch_up"
        else:
            due, trigger = future[0], "schedule"
    due = next_window_start(due, window)
    return due.timestamp(), trigger
