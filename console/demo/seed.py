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

from django.db import connection, transaction
from django.utils import timezone

from console.audit.services import SYSTEM
from console.fleet.models import AT_RISK_FACTOR, Device, DeviceGroup
from console.jobs.models import Command, CommandKind, DailyJobStats, JobRun, JobState, Snapshot
from console.policies import services as policies
from console.policies import spec as specs
from console.policies.models import Policy

DEPARTMENTS = [
    ("Finance", "FIN"),
    ("Engineering", "ENG"),
    ("Sales", "SLS"),
    ("Human Resources", "HR"),
    ("Support", "SUP"),
    ("Design", "DSN"),
    ("Operations", "OPS"),
    ("Legal", "LGL"),
]
FIRST = ["Anna", "Ben", "Carla", "David", "Emma", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Klara", "Lukas", "Mia", "Noah", "Olga", "Paul", "Rosa", "Sam", "Tina", "Umar", "Vera", "Wim", "Yara", "Zoe"]  # fmt: skip
LAST = ["Keller", "Martin", "Novak", "Dubois", "Rossi", "Schmidt", "Jansen", "Silva", "Berg", "Costa", "Meyer", "Lambert", "Fischer", "Moreau", "Weber", "Horvat", "Olsen", "Byrne", "Wagner", "Laurent"]  # fmt: skip
OS_VERSIONS = {
    "windows": ["Windows 11 23H2", "Windows 11 24H2", "Windows 10 22H2"],
    "macos": ["macOS 14.6", "macOS 15.1", "macOS 13.7"],
    "linux": ["Ubuntu 24.04", "Debian 12", "Fedora 41"],
}
AGENT_VERSIONS = ["0.9.4", "1.0.0", "1.0.1", "1.0.2"]
ERRORS = [
    "Storage unreachable: connection to s3.corp.example:9000 timed out",
    "Volume Shadow Copy failed (VSS_E_INSUFFICIENT_STORAGE) and the policy requires a snapshot",
    "Upload grant expired before the run finished",
    "Read error on {Documents}/Archive/2019.pst: I/O error (disk)",
    "Not enough free space for the local index cache",
    "Agent stopped: the PC went to sleep during the run",
]
WARNINGS = [
    ("{Documents}/Budget 2025.xlsx", "changed while being read; retried, stored a consistent copy"),
    ("{OutlookData}/archive.pst", "in use by Outlook; read from the volume snapshot"),
    ("{Desktop}/notes.docx", "changed during every read attempt; skipped this run"),
    ("{Pictures}/Camera/IMG_2231.HEIC", "permission denied; skipped"),
]

JOB_COLUMNS = [
    "device_id",
    "command_id",
    "kind",
    "trigger",
    "policy_revision_id",
    "revision_hash",
    "state",
    "started_at",
    "finished_at",
    "progress",
    "progress_detail",
    "stats",
    "bytes_added",
    "files_processed",
    "warnings",
    "warnings_count",
    "snapshot_id",
    "error",
    "idempotency_key",
    "updated_at",
]


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


def _copy_text(value) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            value = (
                value.replace("\\", "\\\\")
                .replace("\t", "\\t")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )
        return value
    return str(value)


class Sink:
    """Append-only row writer: COPY (text format, written in large chunks) on
    PostgreSQL, executemany elsewhere."""

    def __init__(self, table: str, columns: list[str], batch: int = 5000):
        self.table, self.columns, self.batch = table, columns, batch
        self.rows: list = []
        self.count = 0
        self._copy = None
        self._cm = None
        self._cursor = connection.cursor()
        if connection.vendor == "postgresql":
            self.batch = 20000
            raw = self._cursor.cursor
            self._cm = raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN")
            self._copy = self._cm.__enter__()

    def add(self, row: tuple) -> None:
        self.count += 1
        if self._copy is not None:
            self.rows.append("\t".join(map(_copy_text, row)))
        else:
            self.rows.append(row)
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        if self._copy is not None:
            self._copy.write("\n".join(self.rows) + "\n")
        else:
            marks = ", ".join(["%s"] * len(self.columns))
            self._cursor.executemany(
                f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES ({marks})", self.rows
            )
        self.rows = []

    def close(self) -> None:
        self.flush()
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
        self._cursor.close()


def _dt(value: datetime | None):
    if value is None:
        return None
    return connection.ops.adapt_datetimefield_value(value)


def _uuid(value: uuid.UUID):
    return Device._meta.pk.get_db_prep_value(value, connection)


def _policy_specs() -> list[tuple[str, str, dict, list[str], int]]:
    standard = specs.default_spec()
    execs = specs.default_spec()
    execs["schedule"]["every_hours"] = 1
    execs["rpo_hours"] = 4
    execs["retention"].update({"hourly": 48, "daily": 30, "monthly": 24, "yearly": 7})
    eng = specs.default_spec()
    eng["sources"]["linux"] = ["{Home}"]
    eng["sources"]["macos"] = ["{Documents}", "{Desktop}", "~/src"]
    eng["excludes"] = ["node_modules", "target", "*.o", ".venv", "build", "dist"]
    eng["schedule"]["every_hours"] = 2
    eng["rpo_hours"] = 12
    field_staff = specs.default_spec()
    field_staff["schedule"] = {
        "every_hours": None,
        "times": ["12:30", "17:30"],
        "window": {"start": "08:00", "end": "20:00"},
        "catch_up": True,
    }
    field_staff["rpo_hours"] = 36
    field_staff["limits"]["upload_kbps"] = 4000
    legal = specs.default_spec()
    legal["retention"].update({"keep_within_days": 365, "yearly": 10})
    legal["open_files"] = "required"
    legal["verification"] = {"every_days": 1, "sample_percent": 20}
    return [
        (
            "Standard workstation",
            "Every PC: documents, desktop, pictures and Outlook data.",
            standard,
            [d for d, _ in DEPARTMENTS],
            100,
        ),
        (
            "Executives — hourly",
            "Short RPO and long retention for the leadership team.",
            execs,
            ["Executives"],
            10,
        ),
        (
            "Engineering — source trees",
            "Home folders with build output excluded.",
            eng,
            ["Engineering"],
            50,
        ),
        (
            "Field staff — metered links",
            "Twice a day within working hours, throttled upload.",
            field_staff,
            ["Sales", "Support"],
            40,
        ),
        (
            "Legal hold",
            "Keep everything for a year; snapshot required; daily verification.",
            legal,
            ["Legal"],
            20,
        ),
    ]


def reset_demo(out=print) -> None:
    """Delete every demo row (raw deletes: fast even with millions of runs)."""
    t0 = time.monotonic()
    with transaction.atomic():
        demo_devices = Device.objects.filter(is_demo=True)
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
    from django.db.models import Count, Q, Sum
    from django.db.models.functions import TruncDate

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

    with transaction.atomic():
        # groups and policies through the services (audited as "system")
        groups = {}
        for name, _ in [*DEPARTMENTS, ("Executives", "EXE")]:
            g = DeviceGroup.objects.filter(name=name).first() or DeviceGroup.objects.create(
                name=name, description=f"{name} PCs (demo)", is_demo=True
            )
            groups[name] = g
        created_policies = []
        for name, description, spec_data, group_names, precedence in _policy_specs():
            policy = Policy.objects.filter(name=name).first()
            if policy is None:
                policy = policies.create_policy(SYSTEM, name, spec_data, description, "Demo policy")
                Policy.objects.filter(pk=policy.pk).update(is_demo=True)
            for gname in group_names:
                policies.assign_policy(SYSTEM, policy, groups[gname], precedence)
            created_policies.append(policy)
        # a second revision of the standard policy, so history and rollout show something
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
        by_group = policies._assignments_by_group()

    # plan devices
    dept_names = [d for d, _ in DEPARTMENTS]
    prefixes = dict(DEPARTMENTS)
    plans: list[Plan] = []
    effective_cache: dict[frozenset, policies.Effective] = {}
    for i in range(start_index, start_index + devices):
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
        if sig not in effective_cache:
            effective_cache[sig] = policies._effective_for(sig, by_group)

    # pass 1: summaries and daily stats
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

    # devices
    t1 = time.monotonic()
    revision_one_hash = r1.hash
    device_rows = []
    for plan in plans:
        r = _rng(plan.seed + 1, plan.index)
        eff = effective_cache[plan.signature]
        s = plan.summary
        last_seen = now - timedelta(minutes=r.uniform(1, 300))
        if plan.profile == "offline":
            last_seen = (s["last_backup"] or now - timedelta(days=20)) + timedelta(minutes=5)
        applied = eff.hash if r.random() < 0.88 else revision_one_hash
        if plan.profile == "new" and r.random() < 0.5:
            applied = ""
        device_rows.append(
            Device(
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
                last_success_at=s["last_success"],
                last_job_state=(JobState.FAILED if s["failures"] else JobState.SUCCEEDED)
                if s["last_backup"]
                else "",
                last_error=s["error"],
                failing=s["failures"] > 0,
                consecutive_failures=s["failures"],
                storage_bytes=s["storage"],
                protected_until=s["last_success"] + eff.rpo if s["last_success"] else None,
                at_risk_until=s["last_success"] + eff.rpo * AT_RISK_FACTOR
                if s["last_success"]
                else None,
                effective_policy=eff.policy,
                effective_revision=eff.revision,
                effective_hash=eff.hash,
                rpo=eff.rpo,
                applied_hash=applied,
                applied_at=last_seen if applied else None,
                is_demo=True,
            )
        )
    with transaction.atomic():
        Device.objects.bulk_create(device_rows, batch_size=2000)
        Through = Device.groups.through
        Through.objects.bulk_create(
            [Through(device_id=p.id, devicegroup_id=g) for p in plans for g in p.groups],
            batch_size=5000,
        )
    out(f"{len(plans)} devices in {time.monotonic() - t1:.1f}s")

    # pass 2: job runs and snapshots, streamed
    t2 = time.monotonic()
    jobs_written = snaps_written = 0
    with transaction.atomic():
        jobs_sink = Sink(JobRun._meta.db_table, JOB_COLUMNS)
        snaps = []
        for plan in plans:
            eff = effective_cache[plan.signature]
            rev_id = eff.revision.pk if eff.revision else None
            dev = _uuid(plan.id)
            recent_ok = []
            for started, finished, ok, warnings, error, added, files, snap in _runs(
                plan, now, days, per_device
            ):
                jobs_sink.add(
                    (
                        dev,
                        None,
                        "backup",
                        "schedule",
                        rev_id,
                        eff.hash,
                        JobState.SUCCEEDED if ok else JobState.FAILED,
                        _dt(started),
                        _dt(finished),
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
                        _dt(finished),
                    )
                )
                if ok:
                    recent_ok.append((finished, snap, files, added))
                    if len(recent_ok) > 10:
                        recent_ok.pop(0)
            size = plan.summary["storage"]
            for finished, snap, files, added in recent_ok:
                snaps.append(
                    Snapshot(
                        device_id=plan.id,
                        snapshot_id=snap,
                        taken_at=finished,
                        file_count=files,
                        size_bytes=size,
                        added_bytes=added,
                    )
                )
        jobs_sink.close()  # the connection is busy until the COPY ends
        jobs_written = jobs_sink.count
        Snapshot.objects.bulk_create(snaps, batch_size=5000)
        snaps_written += len(snaps)
        # daily statistics (added to what is there)
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
                    DailyJobStats(
                        day=day, succeeded=ok, failed=bad, warnings=warn, bytes_added=added
                    )
                )
        DailyJobStats.objects.bulk_create(new)
    out(f"{jobs_written} job runs, {snaps_written} snapshots in {time.monotonic() - t2:.1f}s")

    # a few live jobs and open commands, so the jobs page has something running
    with transaction.atomic():
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
                    policy_revision=effective_cache[p.signature].revision,
                    revision_hash=effective_cache[p.signature].hash,
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
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (Device, JobRun, Snapshot, DailyJobStats):
                cursor.execute(f"ANALYZE {model._meta.db_table}")
    from django.core.cache import cache

    cache.delete("cairn:demo-data")
    total = time.monotonic() - t0
    out(f"demo fleet ready in {total:.1f}s")
    return {
        "devices": len(plans),
        "job_runs": jobs_written,
        "snapshots": snaps_written,
        "seconds": total,
    }
