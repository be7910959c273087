"""When backups run: every N hours or at times of day, optionally inside a
daily window, catching up missed slots or not. The agent's scheduler
(agent/daemon/schedule.py) turns a Schedule into the next start."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.policy._fields import (
    TIME_PATTERN,
    Errors,
    boolean,
    bounds,
    flag,
    integer,
    number,
    section,
    strings,
    text,
    time_of_day,
)


@dataclass(frozen=True)
class Window:
    """Starts allowed in [start, end) local time; may wrap midnight."""

    start: str = text(pattern=TIME_PATTERN)
    end: str = text(pattern=TIME_PATTERN)


@dataclass(frozen=True)
class Schedule:
    every_hours: int | None = number(1, 168, 4, nullable=True)
    times: tuple[str, ...] = strings(pattern=TIME_PATTERN)
    window: Window | None = None
    catch_up: bool = flag(True)


DEFAULT = {"every_hours": 4, "times": [], "window": None, "catch_up": True}


def _times(errors: Errors, raw) -> tuple[str, ...]:
    raw = raw or []
    if isinstance(raw, str):
        raw = [t for t in re.split(r"[,\s]+", raw) if t]
    if not isinstance(raw, list | tuple):
        errors.add("schedule.times", "Must be a list of times of day (HH:MM).")
        raw = []
    out: list[str] = []
    for value in raw:
        t = time_of_day(errors, "schedule.times", value)
        if t and t not in out:
            out.append(t)
    return tuple(sorted(out))


def _window(errors: Errors, raw, *, stored: bool) -> Window | None:
    if raw is None:
        return None
    # "No window": null, or both ends left empty (the form's blank fields);
    # stored revisions also wrote {} and "". An object without its two ends
    # is refused, not read as "no window".
    empty_ends = isinstance(raw, dict) and not raw.get("start") and not raw.get("end")
    if (stored and raw in ({}, "")) or (empty_ends and (stored or {"start", "end"} <= raw.keys())):
        return None
    if not isinstance(raw, dict) or not {"start", "end"} <= raw.keys():
        errors.add("schedule.window", "Must be an object with start and end (HH:MM).")
        return None
    start = time_of_day(errors, "schedule.window", raw.get("start"))
    end = time_of_day(errors, "schedule.window", raw.get("end"))
    if start and end and start == end:
        errors.add("schedule.window", "Start and end of the window must differ.")
    return Window(start or "", end or "")


def parse_schedule(errors: Errors, data: dict, *, stored: bool = False) -> Schedule:
    raw = section(errors, data, "schedule", DEFAULT)
    lo, hi = bounds(Schedule, "every_hours")
    every = integer(errors, "schedule.every_hours", raw.get("every_hours"), lo, hi, allow_none=True)
    times = _times(errors, raw.get("times"))
    if every and times:
        errors.add("schedule.every_hours", "Choose either an interval or times of day, not both.")
    elif not every and not times and not {"schedule.every_hours", "schedule.times"} & set(errors):
        errors.add("schedule.every_hours", "Set an interval in hours or at least one time of day.")
    return Schedule(
        every_hours=every,
        times=times,
        window=_window(errors, raw.get("window"), stored=stored),
        catch_up=boolean(errors, "schedule.catch_up", raw.get("catch_up")),
    )
