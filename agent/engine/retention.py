"""Retention: which snapshots a policy keeps (a pure function, no I/O).

:func:`apply_retention` follows restic's ``forget`` semantics
(``restic/internal/restic/snapshot_policy.go``):

* snapshots are grouped (default: by host name and sorted path set, restic's
  ``--group-by host,paths``) and each group is judged on its own;
* within a group, snapshots are walked newest first. ``keep_last`` keeps the
  N newest. ``keep_hourly`` / ``daily`` / ``weekly`` / ``monthly`` /
  ``yearly`` keep the newest snapshot of each of the N newest periods that
  have snapshots. ``-1`` means unlimited, ``0`` disables a rule;
* ``keep_within`` keeps every snapshot taken within that duration of the
  group's *newest* snapshot (not of "now": a device that stopped backing up
  does not lose its history to the clock);
* ``keep_tags`` keeps every snapshot carrying any of the tags;
* when a period rule still has slots left after the walk, the group's oldest
  snapshot is kept as well (restic ≥ 0.14: "oldest daily snapshot");
* with no rule at all, nothing is forgotten (restic refuses to run).

Differences from restic, for safety: the newest snapshot of every group is
always kept (restic forgets it under ``--keep-tag`` alone when it is
untagged), so a device never loses its latest backup to a policy.

Other differences, on purpose: periods are computed in UTC (restic uses
the machine's local time zone; the console and agents of one organisation run
in many zones, UTC makes the result independent of where maintenance runs);
weeks are ISO 8601 weeks (as restic). Snapshots with the same time are
ordered by id so the result is deterministic.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.engine.snapshot import Snapshot, parse_time

if TYPE_CHECKING:
    from agent.policy.retention import Retention

#: the period rules, in restic's order
PERIODS: tuple[tuple[str, Callable[[dt.datetime], tuple]], ...] = (
    ("hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("daily", lambda t: (t.year, t.month, t.day)),
    ("weekly", lambda t: tuple(t.isocalendar()[:2])),
    ("monthly", lambda t: (t.year, t.month)),
    ("yearly", lambda t: (t.year,)),
)

_DURATION_RE = re.compile(r"(\d+)([yhdwm])")
_DURATION_UNITS = {"h": 1, "d": 24, "w": 7 * 24, "m": 30 * 24, "y": 365 * 24}


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``2w``, ``1y6m``, ``12h`` (restic's units: y=365d, m=30d)."""
    text = (text or "").strip().lower()
    pos, hours = 0, 0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        hours += int(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"invalid duration {text!r} (use e.g. 30d, 2w, 6m, 1y, 12h)")
    return dt.timedelta(hours=hours)


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: dt.timedelta | None = None
    keep_tags: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self):
        for name in ("last", *(p for p, _ in PERIODS)):
            n = getattr(self, f"keep_{name}")
            if not isinstance(n, int) or n < -1:
                raise ValueError(f"keep_{name} must be -1 (unlimited), 0 (off) or a count")
        if self.keep_within is not None and self.keep_within < dt.timedelta(0):
            raise ValueError("keep_within must not be negative")

    @property
    def empty(self) -> bool:
        return (
            not any(getattr(self, f"keep_{n}") for n in ("last", *(p for p, _ in PERIODS)))
            and not self.keep_within
            and not self.keep_tags
        )

    @classmethod
    def from_policy(cls, retention: Retention) -> RetentionPolicy:
        """From a policy's typed retention (agent/policy/retention.py): its
        ``hourly`` … ``yearly`` are the ``keep_*`` period rules here."""
        return cls(
            keep_last=retention.keep_last,
            keep_hourly=retention.hourly,
            keep_daily=retention.daily,
            keep_weekly=retention.weekly,
            keep_monthly=retention.monthly,
            keep_yearly=retention.yearly,
            keep_within=dt.timedelta(days=retention.keep_within_days)
            if retention.keep_within_days
            else None,
        )

    def to_dict(self) -> dict:
        doc: dict = {
            f"keep_{n}": getattr(self, f"keep_{n}")
            for n in ("last", *(p for p, _ in PERIODS))
            if getattr(self, f"keep_{n}")
        }
        if self.keep_within:
            doc["keep_within_hours"] = self.keep_within.total_seconds() / 3600
        if self.keep_tags:
            doc["keep_tags"] = sorted(self.keep_tags)
        return doc


@dataclass
class RetentionResult:
    keep: list[Snapshot]
    forget: list[Snapshot]
    #: snapshot id -> why it is kept ("last snapshot", "daily snapshot", ...)
    reasons: dict[str, list[str]]

    def to_dict(self) -> dict:
        return {
            "keep": [{**s.summary(), "reasons": self.reasons.get(s.id, [])} for s in self.keep],
            "forget": [s.summary() for s in self.forget],
        }


def default_group(snap: Snapshot) -> tuple:
    return (snap.hostname, tuple(sorted(snap.paths)))


def _utc(snap: Snapshot) -> dt.datetime:
    t = parse_time(snap.time)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC)


def apply_retention(
    snapshots: Iterable[Snapshot],
    policy: RetentionPolicy,
    *,
    group_by: Callable[[Snapshot], object] | None = default_group,
    time_of: Callable[[Snapshot], dt.datetime] | None = None,
) -> RetentionResult:
    """Split ``snapshots`` into (keep, forget) by ``policy``; both lists are
    newest first. ``group_by=None`` judges all snapshots as one group.
    ``time_of`` gives the time that counts (aware, UTC); by default the
    agent-written ``time``. The console passes the time it observed the
    snapshot, so a device's clock (or lies) never decides (docs/security.md)."""
    snaps = list(snapshots)
    when = time_of or _utc
    if policy.empty:
        ordered = sorted(snaps, key=lambda s: (when(s), s.id), reverse=True)
        return RetentionResult(ordered, [], {s.id: ["no retention rule"] for s in ordered})
    groups: dict[object, list[Snapshot]] = {}
    for s in snaps:
        groups.setdefault(group_by(s) if group_by else None, []).append(s)
    keep: list[Snapshot] = []
    forget: list[Snapshot] = []
    reasons: dict[str, list[str]] = {}
    for members in groups.values():
        k, f = _apply_group(members, policy, reasons, when)
        keep += k
        forget += f
    keep.sort(key=lambda s: (when(s), s.id), reverse=True)
    forget.sort(key=lambda s: (when(s), s.id), reverse=True)
    return RetentionResult(keep, forget, reasons)


def _apply_group(
    members: Sequence[Snapshot],
    policy: RetentionPolicy,
    reasons: dict[str, list[str]],
    when: Callable[[Snapshot], dt.datetime],
) -> tuple[list[Snapshot], list[Snapshot]]:
    ordered = sorted(members, key=lambda s: (when(s), s.id), reverse=True)
    times = [when(s) for s in ordered]
    newest = times[0] if times else None
    remaining = {name: getattr(policy, f"keep_{name}") for name, _ in PERIODS}
    last_bucket: dict[str, tuple | None] = {name: None for name, _ in PERIODS}
    keep_last = policy.keep_last
    keep, forget = [], []
    for snap, t in zip(ordered, times, strict=True):
        why: list[str] = []
        if keep_last != 0:
            why.append("last snapshot")
            if keep_last > 0:
                keep_last -= 1
        for name, bucket_of in PERIODS:
            if remaining[name] == 0:
                continue
            bucket = bucket_of(t)
            if bucket != last_bucket[name]:
                why.append(f"{name} snapshot")
                last_bucket[name] = bucket
                if remaining[name] > 0:
                    remaining[name] -= 1
        if policy.keep_within is not None and newest - t <= policy.keep_within:
            why.append(f"within {_fmt_duration(policy.keep_within)}")
        tags = policy.keep_tags.intersection(snap.tags)
        if tags:
            why.append("tagged " + ",".join(sorted(tags)))
        if not why and snap is ordered[0]:
            why.append("newest snapshot")
        if why:
            keep.append(snap)
            reasons[snap.id] = why
        else:
            forget.append(snap)
    # Period rules with slots left keep the oldest snapshot too (restic).
    if ordered:
        oldest = ordered[-1]
        extra = [
            f"oldest {name} snapshot"
            for name, _ in PERIODS
            if remaining[name] > 0 and getattr(policy, f"keep_{name}") > 0
        ]
        if extra:
            if oldest in forget:
                forget.remove(oldest)
                keep.append(oldest)
                reasons[oldest.id] = extra
            else:
                reasons[oldest.id] = reasons[oldest.id] + extra
    return keep, forget


def _fmt_duration(d: dt.timedelta) -> str:
    hours = int(d.total_seconds() // 3600)
    if hours % 24 == 0:
        return f"{hours // 24}d"
    return f"{hours}h"
