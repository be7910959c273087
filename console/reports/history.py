"""The daily device history: one DeviceDay row per device and closed UTC day.

``fill_days(start, end)`` computes the rows of closed days from the job
history and snapshots the facts in force (host name, groups, policies, RPO,
retention) into them. It is idempotent: a second run over the same days
recomputes the figures that come from job runs (late reports from an offline
device's outbox land on the day they happened) and keeps the snapshot facts a
row already holds, so a past period reads the same after devices, groups and
policies change. Rows of devices deleted since are left as they are.

Within RPO: the device is within its RPO at instant t when its last
successful backup finished at or after t - RPO (and at or before t). The day's
``within_seconds`` is the measure of those instants inside the part of the day
the device was enrolled (``seconds``). See docs/reports.md.

Everything read from a job run's ``stats`` was written by a PC: numbers are
taken only when finite and in bounds, texts are bounded; anything else is
"unknown".
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Max
from django.utils import timezone

from console.fleet.models import DEFAULT_RPO, Device, DeviceGroup
from console.jobs.models import JobRun
from console.policies.services import effective_policy_for_device
from console.reports.models import DeviceDay

DAY = timedelta(days=1)
VERIFY, TEST_RESTORE, BACKUP = "verify", "test_restore", "backup"
#: bounds of what a PC may claim (a year of restore time; 1 PB; 1 TB/s)
MAX_SECONDS, MAX_BYTES, MAX_RATE = 365 * 86400.0, float(2**50), 1e12
MAX_RESULT = 255
#: the longest a run may take and still be counted on the day it finished
RUN_SPAN = timedelta(days=7)

_UPDATED = [
    "seconds",
    "within_seconds",
    "last_good_backup",
    "last_seen",
    "successes",
    "failures",
    "bytes_added",
    "repository_bytes",
    "open_warnings",
    "last_verification",
    "verification_result",
    "last_test_restore",
    "test_restore_result",
    "rto_seconds",
    "restore_throughput_bps",
    "filled_at",
]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + DAY


def last_closed_day(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(UTC).date() - DAY


def within_seconds(points: list[datetime], rpo: timedelta, start: datetime, end: datetime) -> int:
    """Seconds of [start, end) within RPO, given the finish times of successful
    backups (any order; those before ``start`` count through their RPO)."""
    covered = timedelta(0)
    cursor = start
    for finished in sorted(points):
        lo, hi = max(finished, cursor), min(finished + rpo, end)
        if hi > lo:
            covered += hi - lo
            cursor = hi
    return int(covered.total_seconds())


def number(value, upper: float) -> float | None:
    """A finite number in [0, upper] a PC wrote, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    if not math.isfinite(value) or not 0 <= value <= upper:
        return None
    return value


def check_result(state: str, stats) -> str:
    """What a verification or test restore found, in words: ok, damaged
    (naming up to five files), failed, or unknown when the run said nothing."""
    stats = stats if isinstance(stats, dict) else {}
    damaged, files = stats.get("damaged"), stats.get("damaged_files")
    # the console's own verification ends failed when it finds damage (issue 17):
    # what it found is the result, not "failed"
    found = (isinstance(damaged, list) and damaged) or (isinstance(files, list) and files)
    if not str(state).startswith("succeeded") and not found:
        return "failed"
    if not isinstance(damaged, list) and not isinstance(files, list):
        return "unknown"
    damaged = damaged if isinstance(damaged, list) else []
    files = [
        str(f.get("path", "") if isinstance(f, dict) else f)[:120]  # {snapshot, path}
        for f in (files if isinstance(files, list) else [])
    ]
    if not damaged and not files:
        return "ok"
    text = f"damaged: {len(damaged)} objects, {len(files)} files"
    if files:
        text += " (" + ", ".join(files[:5]) + (", …" if len(files) > 5 else "") + ")"
    return text[:MAX_RESULT]


def retention_text(settings) -> str:
    if settings is None:
        return "no policy"
    r = settings.retention
    rules = [
        f"{name.replace('_', ' ')} {getattr(r, name)}"
        for name in ("keep_last", "hourly", "daily", "weekly", "monthly", "yearly")
        if getattr(r, name)
    ]
    if r.keep_within_days:
        rules.append(f"all within {r.keep_within_days} days")
    return ", ".join(rules)[:255] or "none"


@dataclass
class _Check:
    at: datetime
    result: str
    rto: float | None = None
    rate: float | None = None


@dataclass
class _Carry:
    """Per device, what holds at the end of the last day processed."""

    last_good: dict = field(default_factory=dict)
    last_seen: dict = field(default_factory=dict)
    repo_bytes: dict = field(default_factory=dict)
    warnings: dict = field(default_factory=dict)
    verify: dict = field(default_factory=dict)
    test_restore: dict = field(default_factory=dict)


def _check(kind: str, state: str, finished: datetime, stats) -> _Check:
    stats = stats if isinstance(stats, dict) else {}
    rto = rate = None
    if kind == TEST_RESTORE and str(state).startswith("succeeded"):
        rto = number(stats.get("duration_s"), MAX_SECONDS)
        rate = number(stats.get("throughput_bps"), MAX_RATE)
    return _Check(finished, check_result(state, stats), rto, rate)


def _carry_before(start: datetime) -> _Carry:
    """What the job history says about each device up to ``start``."""
    carry = _Carry()
    before = JobRun.objects.filter(finished_at__lt=start)
    good = before.filter(kind=BACKUP, state__startswith="succeeded")
    for device_id, at in (
        good.values("device_id").annotate(at=Max("finished_at")).values_list("device_id", "at")
    ):
        carry.last_good[device_id] = at
    for device_id, at in (
        before.values("device_id").annotate(at=Max("finished_at")).values_list("device_id", "at")
    ):
        carry.last_seen[device_id] = at
    times = set(carry.last_good.values())
    for device_id, finished, stats, warnings in good.filter(finished_at__in=times).values_list(
        "device_id", "finished_at", "stats", "warnings_count"
    ):
        if carry.last_good.get(device_id) == finished:
            _note_success(carry, device_id, stats, warnings)
    for kind, target in ((VERIFY, carry.verify), (TEST_RESTORE, carry.test_restore)):
        runs = before.filter(kind=kind).exclude(state="running")
        latest = dict(
            runs.values("device_id").annotate(at=Max("finished_at")).values_list("device_id", "at")
        )
        for device_id, state, finished, stats in runs.filter(
            finished_at__in=set(latest.values())
        ).values_list("device_id", "state", "finished_at", "stats"):
            if latest.get(device_id) == finished:
                target[device_id] = _check(kind, state, finished, stats)
    return carry


def _note_success(carry: _Carry, device_id, stats, warnings) -> None:
    stats = stats if isinstance(stats, dict) else {}
    size = number(stats.get("repository_bytes"), MAX_BYTES)
    if size is not None:
        carry.repo_bytes[device_id] = int(size)
    carry.warnings[device_id] = int(warnings or 0)


@dataclass(frozen=True)
class _Facts:
    """What was in force for a set of groups: snapshotted into the rows."""

    policy_ids: list
    revision_id: int | None
    policy_hash: str
    rpo: timedelta
    retention: str


class _FactsCache:
    def __init__(self):
        self._by_groups: dict[tuple, _Facts] = {}

    def get(self, device: Device, group_ids: tuple) -> _Facts:
        facts = self._by_groups.get(group_ids)
        if facts is None:
            eff = effective_policy_for_device(device)
            facts = _Facts(
                sorted({p.pk for p, _, _, _ in eff.contributors}),
                eff.revision.pk if eff.revision else None,
                eff.hash,
                eff.rpo or DEFAULT_RPO,
                retention_text(eff.settings),
            )
            self._by_groups[group_ids] = facts
        return facts


def _key(ids) -> str:
    return "," + "".join(f"{i}," for i in ids)


def _devices_of(day_start: datetime, day_end: datetime) -> list[Device]:
    return list(
        Device.objects.filter(enrolled_at__lt=day_end)
        .exclude(revoked=True, revoked_at__isnull=True)
        .exclude(revoked_at__lt=day_start)
        .only("pk", "hostname", "enrolled_at", "revoked_at", "last_seen_at", "storage_bytes")
    )


def _groups_of(device_ids) -> dict:
    names = dict(DeviceGroup.objects.values_list("pk", "name"))
    groups = defaultdict(list)
    for device_id, group_id in Device.groups.through.objects.filter(
        device_id__in=device_ids
    ).values_list("device_id", "devicegroup_id"):
        groups[device_id].append(group_id)
    return {d: sorted(ids) for d, ids in groups.items()}, names


def _fill_day(day: date, carry: _Carry, facts: _FactsCache) -> int:
    day_start, day_end = day_bounds(day)
    devices = _devices_of(day_start, day_end)
    ids = [d.pk for d in devices]
    existing = {r.device_id: r for r in DeviceDay.objects.filter(day=day, device_id__in=ids)}
    groups, names = _groups_of(ids)
    runs = defaultdict(list)
    known = set(ids)
    for run in JobRun.objects.filter(
        # started_at is indexed; a run that finished today started within RUN_SPAN
        started_at__gte=day_start - RUN_SPAN,
        started_at__lt=day_end,
        finished_at__gte=day_start,
        finished_at__lt=day_end,
    ).values_list(
        "device_id", "kind", "state", "finished_at", "bytes_added", "stats", "warnings_count"
    ):
        if run[0] in known:
            runs[run[0]].append(run[1:])
    now = timezone.now()
    rows = []
    for device in devices:
        row = existing.get(device.pk) or _new_row(
            day, device, groups.get(device.pk, []), names, facts
        )
        _measure(
            row,
            device,
            sorted(runs.get(device.pk, []), key=lambda r: r[2]),
            carry,
            day_start,
            day_end,
        )
        row.filled_at = now
        rows.append(row)
    _upsert(rows)
    return len(rows)


def _upsert(rows: list[DeviceDay]) -> None:
    """INSERT … ON CONFLICT (device_id, day) DO UPDATE of the job-run figures,
    as one executemany (PostgreSQL and SQLite both speak it): bulk_create's
    SQL compilation took most of a 10,000-device day."""
    if not rows:
        return
    conn = connections[DEFAULT_DB_ALIAS]  # the wrapper itself, not the per-thread proxy
    fields = [f for f in DeviceDay._meta.concrete_fields if not f.primary_key]
    qn = conn.ops.quote_name
    updated = [f for f in fields if f.name in _UPDATED]
    sql = (
        f"INSERT INTO {qn(DeviceDay._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({qn('device_id')}, {qn('day')}) DO UPDATE SET "
        + ", ".join(f"{qn(f.column)} = EXCLUDED.{qn(f.column)}" for f in updated)
    )
    params = [[f.get_db_prep_save(getattr(r, f.attname), conn) for f in fields] for r in rows]
    with transaction.atomic(), conn.cursor() as cursor:
        cursor.executemany(sql, params)


def _new_row(
    day: date, device: Device, group_ids: list, names: dict, facts: _FactsCache
) -> DeviceDay:
    f = facts.get(device, tuple(group_ids))
    return DeviceDay(
        day=day,
        device_id=device.pk,
        hostname=device.hostname[:255],
        group_ids=group_ids,
        group_names=[names.get(g, str(g)) for g in group_ids],
        group_key=_key(group_ids),
        policy_ids=f.policy_ids,
        policy_key=_key(f.policy_ids),
        policy_revision_id=f.revision_id,
        policy_hash=f.policy_hash,
        rpo_seconds=int(f.rpo.total_seconds()),
        retention=f.retention,
        seconds=0,
        within_seconds=0,
    )


def _measure(row, device, runs, carry: _Carry, day_start, day_end) -> None:
    """The day's figures from its runs (sorted by finish), advancing ``carry``."""
    d = device.pk
    measured_from = max(day_start, device.enrolled_at)
    measured_to = min(day_end, device.revoked_at) if device.revoked_at else day_end
    points = [carry.last_good[d]] if d in carry.last_good else []
    row.successes = row.failures = row.bytes_added = 0
    for kind, state, finished, added, stats, warnings in runs:
        carry.last_seen[d] = max(carry.last_seen.get(d, finished), finished)
        if kind == BACKUP and str(state).startswith("succeeded"):
            row.successes += 1
            row.bytes_added += max(0, int(added or 0))
            points.append(finished)
            carry.last_good[d] = finished
            _note_success(carry, d, stats, warnings)
        elif kind == BACKUP and state == "failed":
            row.failures += 1
        elif kind in (VERIFY, TEST_RESTORE) and state != "running":
            target = carry.verify if kind == VERIFY else carry.test_restore
            target[d] = _check(kind, state, finished, stats)
    if device.last_seen_at and device.last_seen_at < day_end:
        carry.last_seen[d] = max(carry.last_seen.get(d, device.last_seen_at), device.last_seen_at)
    rpo = timedelta(seconds=row.rpo_seconds)
    row.seconds = max(0, int((measured_to - measured_from).total_seconds()))
    row.within_seconds = (
        within_seconds(points, rpo, measured_from, measured_to) if row.seconds else 0
    )
    row.last_good_backup = carry.last_good.get(d)
    row.last_seen = carry.last_seen.get(d)
    row.repository_bytes = carry.repo_bytes.get(d, max(0, device.storage_bytes or 0))
    row.open_warnings = carry.warnings.get(d, 0)
    v, t = carry.verify.get(d), carry.test_restore.get(d)
    row.last_verification, row.verification_result = (v.at, v.result) if v else (None, "")
    row.last_test_restore, row.test_restore_result = (t.at, t.result) if t else (None, "")
    row.rto_seconds, row.restore_throughput_bps = (t.rto, t.rate) if t else (None, None)


def fill_days(start: date, end: date, *, now: datetime | None = None) -> int:
    """Fill (or refill) the rows of the closed days ``start``..``end``
    inclusive; returns how many rows were written."""
    if end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    if end > last_closed_day(now):
        raise ValueError(f"{end} is not a closed day yet: history covers days before today (UTC)")
    carry = _carry_before(day_bounds(start)[0])
    facts = _FactsCache()
    written = 0
    day = start
    while day <= end:
        written += _fill_day(day, carry, facts)
        day += DAY
    return written


def fill_missing(now: datetime | None = None, max_days: int = 7) -> int:
    """Beat: fill the closed days since the last filled one (at most
    ``max_days`` back; yesterday at least)."""
    yesterday = last_closed_day(now)
    last = DeviceDay.objects.aggregate(last=Max("day"))["last"]
    start = yesterday if last is None else max(last + DAY, yesterday - (max_days - 1) * DAY)
    # yesterday is refilled on each run: late reports from offline outboxes land
    return fill_days(min(start, yesterday), yesterday, now=now)
