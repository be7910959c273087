"""Retention (agent/engine/retention.py): restic-compatible forget rules."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import policy
from agent.engine.retention import (
    RetentionPolicy,
    apply_retention,
    parse_duration,
)
from agent.engine.snapshot import Snapshot

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def snap(t: dt.datetime, sid: str | None = None, *, host="pc1", paths=("/home",), tags=()):
    iso = t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return Snapshot(
        tree="00" * 32,
        paths=list(paths),
        hostname=host,
        time=iso,
        tags=list(tags),
        id=sid or f"{int(t.timestamp()):016x}" + "0" * 48,
    )


def ids(snaps):
    return [s.id for s in snaps]


def hourly_series(n, step=dt.timedelta(hours=1)):
    return [snap(T0 + i * step) for i in range(n)]


def test_no_rule_keeps_everything():
    snaps = hourly_series(5)
    r = apply_retention(snaps, RetentionPolicy())
    assert len(r.keep) == 5 and r.forget == []


def test_keep_last():
    snaps = hourly_series(5)
    r = apply_retention(snaps, RetentionPolicy(keep_last=2))
    assert ids(r.keep) == ids(snaps[::-1][:2])
    assert ids(r.forget) == ids(snaps[::-1][2:])
    assert r.reasons[snaps[-1].id] == ["last snapshot"]


def test_keep_daily_takes_newest_of_each_day_and_the_oldest_if_slots_remain():
    # 3 days, 4 snapshots a day (every 6 h)
    snaps = hourly_series(12, dt.timedelta(hours=6))
    r = apply_retention(snaps, RetentionPolicy(keep_daily=2))
    # newest of day 3 and day 2
    assert ids(r.keep) == [snaps[11].id, snaps[7].id]
    r = apply_retention(snaps, RetentionPolicy(keep_daily=5))
    # 3 days only: newest of each, plus the oldest snapshot (slots left)
    assert ids(r.keep) == [snaps[11].id, snaps[7].id, snaps[3].id, snaps[0].id]
    assert r.reasons[snaps[0].id] == ["oldest daily snapshot"]


def test_weekly_monthly_yearly_buckets():
    snaps = [snap(T0 + dt.timedelta(days=d)) for d in range(0, 800, 3)]
    r = apply_retention(snaps, RetentionPolicy(keep_weekly=4, keep_monthly=3, keep_yearly=-1))
    kept = r.keep
    years = {s.start.year for s in kept}
    assert years == {2026, 2027, 2028}
    # 4 weeks + 3 months + 3 years, overlapping at the newest snapshot
    assert snaps[-1] in kept
    assert len(kept) <= 4 + 3 + 3 + 1


def test_keep_within_is_relative_to_the_newest_snapshot():
    snaps = [snap(T0 + dt.timedelta(days=d)) for d in range(100)]
    r = apply_retention(snaps, RetentionPolicy(keep_within=parse_duration("10d")))
    assert len(r.keep) == 11  # days 89..99 inclusive
    assert r.reasons[snaps[-1].id] == ["within 10d"]


def test_tags_alone_still_keep_the_newest_snapshot():
    snaps = hourly_series(3)
    r = apply_retention(snaps, RetentionPolicy(keep_tags=frozenset({"legal"})))
    assert ids(r.keep) == [snaps[-1].id]
    assert r.reasons[snaps[-1].id] == ["newest snapshot"]


def test_keep_tags_and_groups():
    a = [snap(T0 + dt.timedelta(hours=i), host="a") for i in range(3)]
    b = [snap(T0 + dt.timedelta(hours=i), sid=f"b{i}" + "0" * 62, host="b") for i in range(3)]
    tagged = snap(T0 - dt.timedelta(days=9), sid="c" * 64, host="a", tags=["legal"])
    r = apply_retention(
        [*a, *b, tagged], RetentionPolicy(keep_last=1, keep_tags=frozenset({"legal"}))
    )
    assert set(ids(r.keep)) == {a[-1].id, b[-1].id, tagged.id}
    assert r.reasons[tagged.id] == ["tagged legal"]


def test_from_the_policy_contract():
    retention = policy.Retention(keep_last=10, hourly=24, daily=14, weekly=0, keep_within_days=3)
    p = RetentionPolicy.from_policy(retention)
    assert (p.keep_last, p.keep_hourly, p.keep_daily, p.keep_weekly) == (10, 24, 14, 0)
    assert p.keep_within == dt.timedelta(days=3)
    assert RetentionPolicy.from_policy(policy.Retention(keep_within_days=0)).keep_within is None


@pytest.mark.parametrize(
    "text,hours", [("30d", 720), ("2w", 336), ("1y6m", 365 * 24 + 180 * 24), ("12h", 12)]
)
def test_parse_duration(text, hours):
    assert parse_duration(text) == dt.timedelta(hours=hours)


@pytest.mark.parametrize("text", ["", "30", "d", "3x", "1d 2h", "-1d"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


# --- properties ---------------------------------------------------------------------------
times = st.lists(
    st.tuples(st.integers(min_value=0, max_value=3 * 365 * 24 * 60), st.sampled_from([(), ("a",)])),
    min_size=1,
    max_size=40,
    unique_by=lambda t: t[0],
).map(lambda items: [snap(T0 + dt.timedelta(minutes=m), tags=tags) for m, tags in items])
counts = st.integers(min_value=-1, max_value=6)
policies = st.builds(
    RetentionPolicy,
    keep_last=counts,
    keep_hourly=counts,
    keep_daily=counts,
    keep_weekly=counts,
    keep_monthly=counts,
    keep_yearly=counts,
    keep_within=st.one_of(st.none(), st.integers(0, 400).map(lambda d: dt.timedelta(days=d))),
    keep_tags=st.sets(st.sampled_from(["a", "b"])).map(frozenset),
)


@settings(max_examples=150, deadline=None)
@given(times, policies)
def test_partition_newest_kept_and_idempotent(snaps, policy):
    r = apply_retention(snaps, policy)
    assert sorted(ids(r.keep) + ids(r.forget)) == sorted(ids(snaps))
    assert not set(ids(r.keep)) & set(ids(r.forget))
    newest = max(snaps, key=lambda s: (s.start, s.id))
    # Every rule set (and even none) keeps the newest snapshot.
    assert newest in r.keep
    assert all(s.id in r.reasons for s in r.keep)
    # Applying the policy again to what was kept forgets nothing more.
    again = apply_retention(r.keep, policy)
    assert again.forget == []


@settings(max_examples=100, deadline=None)
@given(times, st.integers(1, 10))
def test_keep_last_keeps_exactly_n(snaps, n):
    r = apply_retention(snaps, RetentionPolicy(keep_last=n))
    assert len(r.keep) == min(n, len(snaps))
