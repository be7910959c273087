"""Demo fleet generator behind ``python manage.py seed_demo``.

Everything it creates is marked ``is_demo`` (groups, policies, devices; the
dashboard shows a banner while demo data exists) and hostnames end in
``.demo``. Fast enough for load measurement: on PostgreSQL rows are streamed
with COPY (10,000 devices and 1,000,000 job runs in a few minutes); on SQLite
with executemany.

Two passes over a deterministic random generator per device: the first
computes each device's denormalised state (last backup, failures, storage)
and the daily statistics; the second streams the same job runs into the
database after the devices exist.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from console.audit.services import SYSTEM
from console.demo.catalog import (
    AGENT_VERSIONS,
    DEPARTMENTS,
    ERRORS,
    FIRST,
    LAST,
    OS_VERSIONS,
    WARNINGS,
    policy_specs,
)
from console.demo.sink import JOB_COLUMNS, Sink, db_datetime, db_uuid
from console.fleet.models import AT_RISK_FACTOR, Device, DeviceGroup
from console.jobs.models import Command, CommandKind, DailyJobStats, JobRun, JobState, Snapshot
from console.policies import services as policies
from console.policies.models import Policy
from console.reports import history
from console.reports.models import DeviceDay


@dataclass
class Plan:
    index: int
    id: uuid.UUID
    hostname: str
    os: str
    groups: list[int]
    signature: frozenset
    enrolled_at: datetime
    profile: str
    seed: int
    summary: dict = field(default_factory=dict)


def _rng(seed: int, index: int) -> random.Random:
    return random.Random(seed * 1_000_003 + index)


def reset_demo(out=print) -> None:
    """Delete every demo row (raw deletes: fast even with millions of runs)."""
    t0 = time.monotonic()
    with transaction.atomic():
        demo_devices = Device.objects.filter(is_demo=True)
        DeviceDay.objects.filter(device_id__in=demo_devices.values("pk"))._raw_delete(
            DeviceDay.objects.db
        )
        Snapshot.objects.filter(device__in=demo_devices)._raw_delete(Snapshot.objects.db)
        JobRun.objects.filter(device__in=demo_devices)._raw_delete(JobRun.objects.db)
        Command.objects.filter(device__in=demo_devices)._raw_delete(Command.objects.db)
        Device.groups.through.objects.filter(device__in=demo_devices)._raw_delete(Device.objects.db)
        demo_devices._raw_delete(Device.objects.db)
        for p in Policy.objects.filter(is_demo=True):
            p.assignments.all().delete()
            Device.objects.filter(effective_policy=p).update(
                effective_policy=None, effective_revision=None
            )
            JobRun.objects.filter(policy_revision__policy=p).update(policy_revision=None)
            Policy.objects.filter(pk=p.pk).update(current_revision=None)
            Policy.objects.filter(pk=p.pk).delete()
        DeviceGroup.objects.filter(is_demo=True).delete()
        DailyJobStats.objects.all().delete()
        rebuild_daily_stats()
    out(f"removed previous demo data in {time.monotonic() - t0:.1f}s")


def rebuild_daily_stats() -> None:
    rows = (
        JobRun.objects.filter(kind="backup", finished_at__isnull=False)
        .exclude(state=JobState.RUNNING)
        .annotate(day=TruncDate("finished_at"))
        .values("day")
        .annotate(
            ok=Count("pk", filter=Q(state=JobState.SUCCEEDED)),
            bad=Count("pk", filter=Q(state=JobState.FAILED)),
            warn=Count("pk", filter=Q(state=JobState.SUCCEEDED, warnings_count__gt=0)),
            added=Sum("bytes_added"),
        )
    )
    DailyJobStats.objects.bulk_create(
        [
            DailyJobStats(
                day=r["day"],
                succeeded=r["ok"],
                failed=r["bad"],
                warnings=r["warn"],
                bytes_added=r["added"] or 0,
            )
            for r in rows
        ]
    )


def _runs(plan: Plan, end: datetime, days: int, per_device: int) -> Iterator[tuple]:
    """The job runs of one device: (started, finished, ok, warnings, error, bytes, files, snap)."""
    rng = _rng(plan.seed, plan.index)
    start = max(plan.enrolled_at, end - timedelta(days=days))
    interval = timedelta(hours=days * 24 / max(per_device, 1))
    stop = end
    if plan.profile == "offline":
        stop = end - timedelta(days=rng.uniform(1.5, 30))
    t = start + interval * rng.random()
    broken_from = end - timedelta(days=rng.uniform(0.5, 6)) if plan.profile == "broken" else None
    fail_rate = {"flaky": 0.25, "healthy": 0.015}.get(plan.profile, 0.02)
    error = rng.choice(ERRORS)
    while t < stop:
        duration = timedelta(seconds=rng.randint(60, 2400))
        if broken_from is not None and t >= broken_from:
            ok = False
        else:
            ok = rng.random() >= fail_rate
        warnings = []
        if ok and rng.random() < 0.06:
            path, msg = rng.choice(WARNINGS)
            warnings = [{"path": path, "message": msg}]
        added = int(rng.lognormvariate(16, 1.5)) if ok else 0
        files = rng.randint(200, 60000)
        snap = f"{rng.getrandbits(64):016x}" if ok else ""
        yield (t, t + duration, ok, warnings, "" if ok else error, added, files, snap)
        t += interval * rng.uniform(0.7, 1.3)


def seed_demo(
    devices: int = 200, days: int = 90, per_device: int | None = None, seed: int = 7, out=print
) -> dict:
    """Create a demo fleet. Returns counts."""
    t0 = time.monotonic()
    per_device = per_device or days
    now = timezone.now().replace(microsecond=0)
    # seeding again adds devices after the existing demo ones
    start_index = Device.objects.filter(is_demo=True).count()
    rng = random.Random(seed * 7919 + start_index)

    groups, first_revision, by_group = _groups_and_policies()
    plans, effective = _plan_devices(
        rng, range(start_index, start_index + devices), groups, by_group, now, days, seed
    )
    daily = _summarise(plans, now, days, per_device)

    t1 = time.monotonic()
    _write_devices(plans, effective, first_revision.hash, now)
    out(f"{len(plans)} devices in {time.monotonic() - t1:.1f}s")

    t2 = time.monotonic()
    with transaction.atomic():
        jobs_written, snaps_written = _write_history(plans, effective, now, days, per_device)
        _add_daily_stats(daily)
    out(f"{jobs_written} job runs, {snaps_written} snapshots in {time.monotonic() - t2:.1f}s")

    _write_live_work(rng, plans, effective, now)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (Device, JobRun, Snapshot, DailyJobStats):
                cursor.execute(f"ANALYZE {model._meta.db_table}")
    _fill_history(now, days, out)
    cache.delete("cairn:demo-data")
    total = time.monotonic() - t0
    out(f"demo fleet ready in {total:.1f}s")
    return {
        "devices": len(plans),
        "job_runs": jobs_written,
        "snapshots": snaps_written,
        "seconds": total,
    }


def _fill_history(now: datetime, days: int, out) -> None:
    """The daily device history of the seeded closed days (what the beat
    task fills day by day), so reports have their period."""
    t0 = time.monotonic()
    last = history.last_closed_day(now)
    rows = history.fill_days(last - timedelta(days=days - 1), last, now=now)
    out(f"{rows} device-days of history in {time.monotonic() - t0:.1f}s")


@transaction.atomic
def _groups_and_policies():
    """Demo groups and policies, through the services (audited as "system"),
    with a second revision of the standard policy so history and rollout
    show something. Returns (groups by name, standard's first revision,
    assignments by group)."""
    groups = {}
    for name, _ in [*DEPARTMENTS, ("Executives", "EXE")]:
        g = DeviceGroup.objects.filter(name=name).first() or DeviceGroup.objects.create(
            name=name, description=f"{name} PCs (demo)", is_demo=True
        )
        groups[name] = g
    created_policies = []
    for name, description, spec_data, group_names, precedence in policy_specs():
        policy = Policy.objects.filter(name=name).first()
        if policy is None:
            policy = policies.create_policy(SYSTEM, name, spec_data, description, "Demo policy")
            Policy.objects.filter(pk=policy.pk).update(is_demo=True)
        for gname in group_names:
            policies.assign_policy(SYSTEM, policy, groups[gname], precedence)
        created_policies.append(policy)
    standard = created_policies[0]
    r1 = standard.current_revision
    if r1.number == 1:
        spec2 = json.loads(json.dumps(r1.spec))
        spec2["schedule"]["every_hours"] = 3
        spec2["excludes"].append("*.iso")
        policies.update_policy(
            SYSTEM,
            standard,
            standard.name,
            spec2,
            standard.description,
            "Back up every 3 h; skip disk images",
        )
    return groups, r1, policies._assignments_by_group()


def _plan_devices(rng, indexes, groups, by_group, now, days, seed):
    """One Plan per device (department, OS, health profile), and the
    effective policy of each distinct group membership, merged once."""
    dept_names = [d for d, _ in DEPARTMENTS]
    prefixes = dict(DEPARTMENTS)
    plans: list[Plan] = []
    effective: dict[frozenset, policies.Effective] = {}
    for i in indexes:
        dept = rng.choice(dept_names)
        member = [groups[dept].pk]
        if rng.random() < 0.03:
            member.append(groups["Executives"].pk)
        os_name = rng.choices(["windows", "macos", "linux"], weights=[70, 22, 8])[0]
        kind = {"windows": rng.choice(["LT", "DT"]), "macos": "MB", "linux": "WS"}[os_name]
        profile = rng.choices(
            ["healthy", "flaky", "broken", "offline", "new"], weights=[86, 5, 3, 4, 2]
        )[0]
        enrolled = now - timedelta(days=rng.uniform(days, days * 1.5))
        if profile == "new":
            enrolled = now - timedelta(hours=rng.uniform(1, 72))
        sig = frozenset(member)
        plans.append(
            Plan(
                i,
                uuid.UUID(int=rng.getrandbits(128), version=4),
                f"{prefixes[dept]}-{kind}-{i:05d}.demo",
                os_name,
                member,
                sig,
                enrolled,
                profile,
                seed,
            )
        )
        if sig not in effective:
            effective[sig] = policies._effective_for(sig, by_group)
    return plans, effective


def _summarise(plans: list[Plan], now, days: int, per_device: int) -> dict:
    """Pass 1: each plan's summary (last backup, failures, storage) and the
    daily statistics, day -> [succeeded, failed, with warnings, bytes added]."""
    daily: dict = defaultdict(lambda: [0, 0, 0, 0])
    for plan in plans:
        last_backup = last_success = None
        failures = 0
        storage = 0
        last_error = ""
        for _started, finished, ok, warnings, error, added, _files, _snap in _runs(
            plan, now, days, per_device
        ):
            d = daily[finished.astimezone(UTC).date()]
            last_backup = finished
            if ok:
                last_success, failures, last_error = finished, 0, ""
                storage += added
                d[0] += 1
                d[2] += 1 if warnings else 0
                d[3] += added
            else:
                failures += 1
                last_error = error
                d[1] += 1
        plan.summary = {
            "last_backup": last_backup,
            "last_success": last_success,
            "failures": failures,
            "storage": int(storage * 0.45),
            "error": last_error,
        }
    return daily


def _device_row(plan: Plan, eff, revision_one_hash: str, now) -> Device:
    r = _rng(plan.seed + 1, plan.index)
    s = plan.summary
    last_seen = now - timedelta(minutes=r.uniform(1, 300))
    if plan.profile == "offline":
        last_seen = (s["last_backup"] or now - timedelta(days=20)) + timedelta(minutes=5)
    applied = eff.hash if r.random() < 0.88 else revision_one_hash
    if plan.profile == "new" and r.random() < 0.5:
        applied = ""
    last_ok = s["last_success"]
    return Device(
        id=plan.id,
        hostname=plan.hostname,
        os=plan.os,
        os_version=r.choice(OS_VERSIONS[plan.os]),
        agent_version=r.choice(AGENT_VERSIONS),
        owner=f"{r.choice(FIRST)} {r.choice(LAST)}",
        enrolled_at=plan.enrolled_at,
        last_seen_at=last_seen,
        cert_fingerprint=f"{r.getrandbits(256):064x}",
        last_backup_at=s["last_backup"],
        last_success_at=last_ok,
        last_job_state=(JobState.FAILED if s["failures"] else JobState.SUCCEEDED)
        if s["last_backup"]
        else "",
        last_error=s["error"],
        failing=s["failures"] > 0,
        consecutive_failures=s["failures"],
        storage_bytes=s["storage"],
        protected_until=last_ok + eff.rpo if last_ok else None,
        at_risk_until=last_ok + eff.rpo * AT_RISK_FACTOR if last_ok else None,
        effective_policy=eff.policy,
        effective_revision=eff.revision,
        effective_hash=eff.hash,
        rpo=eff.rpo,
        applied_hash=applied,
        applied_at=last_seen if applied else None,
        is_demo=True,
    )


@transaction.atomic
def _write_devices(plans: list[Plan], effective: dict, revision_one_hash: str, now) -> None:
    rows = [_device_row(p, effective[p.signature], revision_one_hash, now) for p in plans]
    Device.objects.bulk_create(rows, batch_size=2000)
    Through = Device.groups.through
    Through.objects.bulk_create(
        [Through(device_id=p.id, devicegroup_id=g) for p in plans for g in p.groups],
        batch_size=5000,
    )


def _job_row(dev: str, eff, run: tuple) -> tuple:
    """One JobRun row in JOB_COLUMNS order, from a run of ``_runs``."""
    started, finished, ok, warnings, error, added, files, snap = run
    return (
        dev,
        None,
        "backup",
        "schedule",
        eff.revision.pk if eff.revision else None,
        eff.hash,
        JobState.SUCCEEDED if ok else JobState.FAILED,
        db_datetime(started),
        db_datetime(finished),
        1.0 if ok else 0.4,
        "{}",
        f'{{"files_processed": {files}, "bytes_added": {added}, '
        f'"seconds": {int((finished - started).total_seconds())}}}',
        added,
        files,
        json.dumps(warnings) if warnings else "[]",
        len(warnings),
        snap,
        error,
        None,
        db_datetime(finished),
    )


def _write_history(plans, effective, now, days: int, per_device: int) -> tuple[int, int]:
    """Pass 2: the same job runs streamed into the database, and each
    device's last ten good runs as snapshots. Returns (job runs, snapshots)."""
    jobs_sink = Sink(JobRun._meta.db_table, JOB_COLUMNS)
    snaps = []
    for plan in plans:
        eff = effective[plan.signature]
        dev = db_uuid(plan.id)
        recent_ok = []
        for run in _runs(plan, now, days, per_device):
            jobs_sink.add(_job_row(dev, eff, run))
            _started, finished, ok, _warnings, _error, added, files, snap = run
            if ok:
                recent_ok.append((finished, snap, files, added))
                if len(recent_ok) > 10:
                    recent_ok.pop(0)
        size = plan.summary["storage"]
        snaps.extend(
            Snapshot(
                device_id=plan.id,
                snapshot_id=snap,
                taken_at=finished,
                file_count=files,
                size_bytes=size,
                added_bytes=added,
            )
            for finished, snap, files, added in recent_ok
        )
    jobs_sink.close()  # the connection is busy until the COPY ends
    Snapshot.objects.bulk_create(snaps, batch_size=5000)
    return jobs_sink.count, len(snaps)


def _add_daily_stats(daily: dict) -> None:
    """Daily statistics, added to what is there (seeding again adds devices)."""
    existing = {s.day: s for s in DailyJobStats.objects.filter(day__in=list(daily))}
    new = []
    for day, (ok, bad, warn, added) in daily.items():
        s = existing.get(day)
        if s:
            DailyJobStats.objects.filter(pk=s.pk).update(
                succeeded=s.succeeded + ok,
                failed=s.failed + bad,
                warnings=s.warnings + warn,
                bytes_added=s.bytes_added + added,
            )
        else:
            new.append(
                DailyJobStats(day=day, succeeded=ok, failed=bad, warnings=warn, bytes_added=added)
            )
    DailyJobStats.objects.bulk_create(new)


@transaction.atomic
def _write_live_work(rng, plans: list[Plan], effective: dict, now) -> None:
    """A few running jobs and open commands, so the jobs page has something
    in flight."""
    live = rng.sample(plans, k=min(len(plans), max(1, len(plans) // 200)))
    JobRun.objects.bulk_create(
        [
            JobRun(
                device_id=p.id,
                kind="backup",
                trigger="schedule",
                state=JobState.RUNNING,
                started_at=now - timedelta(minutes=rng.randint(1, 30)),
                progress=round(rng.uniform(0.05, 0.95), 2),
                progress_detail={
                    "files_done": rng.randint(100, 9000),
                    "bytes_done": rng.randint(10**6, 10**9),
                },
                policy_revision=effective[p.signature].revision,
                revision_hash=effective[p.signature].hash,
            )
            for p in live
        ]
    )
    Command.objects.bulk_create(
        [
            Command(
                device_id=p.id,
                kind=CommandKind.BACKUP,
                created_at=now - timedelta(minutes=rng.randint(1, 120)),
                expires_at=now + timedelta(hours=48),
            )
            for p in rng.sample(plans, k=min(len(plans), 5))
        ]
    )
