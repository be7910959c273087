"""The compliance report: a period, a scope, and what the daily device history
(console/reports/history.py) says about it.

``build_compliance_report(start, end, scope)`` reads only DeviceDay rows, so a
past period reads the same after devices, groups and policies change. Scope
membership is per day: with ``Scope.group(7)`` a device counts for the days
its row names group 7, and only those. The result is frozen dataclasses (the
PDF, CSV and JSON renderings all start from them) with a digest: the SHA-256
of the report's canonical JSON (everything but the digest itself).
What each figure means: docs/reports.md.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime

from django.conf import settings
from django.db.models import Max, Min, Q, Sum
from django.utils import timezone

from console.fleet.models import DeviceGroup
from console.fleet.queries import stale_after
from console.policies.models import Policy
from console.reports.history import day_bounds
from console.reports.models import DeviceDay

MAX_DAYS = 400

NEVER_BACKED_UP, NOT_SEEN, OUT_OF_RPO, OK = "never backed up", "not seen", "out of RPO", "ok"
STATUS_ORDER = {NEVER_BACKED_UP: 0, NOT_SEEN: 1, OUT_OF_RPO: 2, OK: 3}

ENCRYPTION = (
    "always: AES-256-GCM on the device before upload, data keys wrapped by the "
    "organisation key; no unencrypted copy leaves the PC"
)
IMMUTABILITY = (
    "create-only objects: devices write through pre-signed create-only URLs and "
    "can neither overwrite nor delete; only the console's retention removes snapshots"
)


class ScopeError(ValueError):
    pass


@dataclass(frozen=True)
class Scope:
    kind: str = "all"  # all | group | policy
    id: int | None = None
    label: str = "all devices"

    @classmethod
    def all(cls) -> Scope:
        return cls()

    @classmethod
    def group(cls, group_id: int) -> Scope:
        name = DeviceGroup.objects.filter(pk=group_id).values_list("name", flat=True).first()
        if name is None:
            raise ScopeError(f"no group with id {group_id}")
        return cls("group", group_id, f"group {name} (#{group_id})")

    @classmethod
    def policy(cls, policy_id: int) -> Scope:
        name = Policy.objects.filter(pk=policy_id).values_list("name", flat=True).first()
        if name is None:
            raise ScopeError(f"no policy with id {policy_id}")
        return cls("policy", policy_id, f"policy {name} (#{policy_id})")

    def q(self) -> Q:
        if self.kind == "group":
            return Q(group_key__contains=f",{self.id},")
        if self.kind == "policy":
            return Q(policy_key__contains=f",{self.id},")
        return Q()


@dataclass(frozen=True)
class FleetTotals:
    devices: int
    within_rpo_share: float
    never_backed_up: int
    not_seen: int
    failures: int
    bytes_added: int
    repository_bytes: int
    verified: int
    test_restored: int


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    hostname: str
    groups: list[str]
    rpo_hours: float
    achieved_share: float
    last_good_backup: datetime | None
    last_seen: datetime | None
    successes: int
    failures: int
    bytes_added: int
    repository_bytes: int
    encryption: str
    retention: str
    immutability: str
    last_verification: datetime | None
    verification_result: str
    last_test_restore: datetime | None
    test_restore_result: str
    rto_seconds: float | None
    restore_throughput_bps: float | None
    status: str  # "never backed up" | "not seen" | "out of RPO" | "ok"


@dataclass(frozen=True)
class ControlEvidence:
    framework: str
    control: str
    title: str
    evidenced_by: str
    result: str


@dataclass(frozen=True)
class ComplianceReport:
    generated_at: datetime
    start: date
    end: date
    scope_label: str
    source: str  # what data it was built from
    totals: FleetTotals
    devices: list[DeviceRow]
    controls: list[ControlEvidence]
    digest: str  # sha256 of the canonical JSON


def _jsonable(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def plain(report: ComplianceReport) -> dict:
    """The report as dicts and lists (times still datetime): what asdict gives,
    without its deep copies (10,000 rows in milliseconds, not seconds)."""
    return {
        "generated_at": report.generated_at,
        "start": report.start,
        "end": report.end,
        "scope_label": report.scope_label,
        "source": report.source,
        "totals": dict(vars(report.totals)),
        "devices": [dict(vars(d)) for d in report.devices],
        "controls": [dict(vars(c)) for c in report.controls],
        "digest": report.digest,
    }


def report_dict(report: ComplianceReport) -> dict:
    """The report as JSON values (ISO 8601 UTC times)."""
    return json.loads(json.dumps(plain(report), default=_jsonable))


def canonical_json(report: ComplianceReport) -> bytes:
    """The report's content as canonical JSON (sorted keys, no spaces, UTF-8),
    without its digest: what the digest is the SHA-256 of."""
    data = plain(report)
    data.pop("digest", None)
    return json.dumps(
        data, default=_jsonable, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def digest_of(report: ComplianceReport) -> str:
    return hashlib.sha256(canonical_json(report)).hexdigest()


def _status(last: dict, seen_by: datetime) -> str:
    if last["last_good_backup"] is None:
        return NEVER_BACKED_UP
    if last["last_seen"] is None or last["last_seen"] < seen_by:
        return NOT_SEEN
    return OK if last["within"] >= last["seconds"] else OUT_OF_RPO


def _device_rows(start: date, end: date, scope: Scope) -> tuple[list[DeviceRow], int, int]:
    """Per-device rows, and the fleet's measured and within-RPO seconds."""
    rows = DeviceDay.objects.filter(scope.q(), day__gte=start, day__lte=end)
    sums = {
        r["device_id"]: r
        for r in rows.values("device_id").annotate(
            seconds=Sum("seconds"),
            within=Sum("within_seconds"),
            successes=Sum("successes"),
            failures=Sum("failures"),
            bytes_added=Sum("bytes_added"),
            first=Min("day"),
            last=Max("day"),
        )
    }
    lasts = DeviceDay.objects.filter(
        scope.q(), day__gte=start, day__lte=end, day__in={s["last"] for s in sums.values()}
    ).values(
        "device_id",
        "day",
        "hostname",
        "group_names",
        "rpo_seconds",
        "retention",
        "last_good_backup",
        "last_seen",
        "repository_bytes",
        "last_verification",
        "verification_result",
        "last_test_restore",
        "test_restore_result",
        "rto_seconds",
        "restore_throughput_bps",
    )
    seen_by = day_bounds(end)[1] - stale_after()
    out = []
    for last in lasts:
        s = sums.get(last["device_id"])
        if s is None or s["last"] != last["day"]:
            continue
        seconds, within = s["seconds"] or 0, s["within"] or 0
        status = _status({**last, "seconds": seconds, "within": within}, seen_by)
        out.append(
            DeviceRow(
                device_id=str(last["device_id"]),
                hostname=last["hostname"],
                groups=list(last["group_names"] or []),
                rpo_hours=round(last["rpo_seconds"] / 3600, 4),
                achieved_share=round(within / seconds, 6) if seconds else 0.0,
                last_good_backup=last["last_good_backup"],
                last_seen=last["last_seen"],
                successes=s["successes"] or 0,
                failures=s["failures"] or 0,
                bytes_added=s["bytes_added"] or 0,
                repository_bytes=last["repository_bytes"],
                encryption=ENCRYPTION,
                retention=last["retention"],
                immutability=IMMUTABILITY,
                last_verification=last["last_verification"],
                verification_result=last["verification_result"] or "none",
                last_test_restore=last["last_test_restore"],
                test_restore_result=last["test_restore_result"] or "none",
                rto_seconds=last["rto_seconds"],
                restore_throughput_bps=last["restore_throughput_bps"],
                status=status,
            )
        )
    out.sort(key=lambda r: (STATUS_ORDER[r.status], r.hostname.lower(), r.device_id))
    return (
        out,
        sum(s["seconds"] or 0 for s in sums.values()),
        sum(s["within"] or 0 for s in sums.values()),
    )


def _in_period(at: datetime | None, start: date) -> bool:
    return at is not None and at >= day_bounds(start)[0]


def _totals(devices: list[DeviceRow], seconds: int, within: int, start: date) -> FleetTotals:
    return FleetTotals(
        devices=len(devices),
        within_rpo_share=round(within / seconds, 6) if seconds else 0.0,
        never_backed_up=sum(d.status == NEVER_BACKED_UP for d in devices),
        not_seen=sum(d.status == NOT_SEEN for d in devices),
        failures=sum(d.failures for d in devices),
        bytes_added=sum(d.bytes_added for d in devices),
        repository_bytes=sum(d.repository_bytes for d in devices),
        verified=sum(
            _in_period(d.last_verification, start) and d.verification_result == "ok"
            for d in devices
        ),
        test_restored=sum(
            _in_period(d.last_test_restore, start) and d.test_restore_result == "ok"
            for d in devices
        ),
    )


def _controls(t: FleetTotals) -> list[ControlEvidence]:
    ok = t.devices - t.never_backed_up - t.not_seen
    backups = (
        f"{t.devices} devices, {t.within_rpo_share:.2%} of device-time within RPO; "
        f"{t.never_backed_up} never backed up, {t.not_seen} not seen, {t.failures} failed runs"
    )
    tests = (
        f"{t.verified} of {t.devices} devices verified without damage and "
        f"{t.test_restored} test-restored in the period"
    )
    gap = "gaps: " if (t.never_backed_up or t.not_seen or t.within_rpo_share < 1) else "met: "
    tgap = "gaps: " if (t.verified < t.devices or t.test_restored < t.devices) else "met: "
    rows = "Device rows (RPO target vs achieved, last good backup, encryption, retention, immutability)"
    checks = "Device rows (last verification, last test restore, results, measured RTO, throughput)"
    return [
        ControlEvidence(
            "ISO/IEC 27001:2022",
            "A.8.13",
            "Information backup: copies maintained and regularly tested per the backup policy",
            f"Fleet totals; {rows}; {checks}",
            (gap if gap == tgap else "gaps: ") + f"{backups}; {tests}",
        ),
        ControlEvidence(
            "SOC 2",
            "A1.2",
            "Backup and recovery infrastructure (data backup processes)",
            f"Fleet totals; {rows}",
            gap + backups + f"; {ok} devices backing up",
        ),
        ControlEvidence("SOC 2", "A1.3", "Recovery plan testing", checks, tgap + tests),
        ControlEvidence(
            "HIPAA",
            "§164.308(a)(7)(ii)(A)",
            "Data backup plan: retrievable exact copies of ePHI",
            f"Fleet totals; {rows}",
            gap + backups,
        ),
        ControlEvidence(
            "HIPAA",
            "§164.308(a)(7)(ii)(D)",
            "Testing and revision procedures for contingency plans",
            checks,
            tgap + tests,
        ),
    ]


def _source(start: date, end: date, devices: int) -> str:
    db = settings.DATABASES["default"]
    where = db.get("HOST") or "local"
    return (
        f"device history {start.isoformat()}..{end.isoformat()}, {devices:,} devices, "
        f"generated from console DB {db.get('NAME')}@{where}"
    )


def check_period(start: date, end: date) -> None:
    if end < start:
        raise ScopeError(f"the period ends ({end}) before it starts ({start})")
    if (end - start).days + 1 > MAX_DAYS:
        raise ScopeError(f"a report covers at most {MAX_DAYS} days")


def build_compliance_report(
    start: date, end: date, scope: Scope | None = None, *, now: datetime | None = None
) -> ComplianceReport:
    scope = scope or Scope.all()
    check_period(start, end)
    devices, seconds, within = _device_rows(start, end, scope)
    totals = _totals(devices, seconds, within, start)
    report = ComplianceReport(
        generated_at=(now or timezone.now()).astimezone(UTC).replace(microsecond=0),
        start=start,
        end=end,
        scope_label=scope.label,
        source=_source(start, end, len(devices)),
        totals=totals,
        devices=devices,
        controls=_controls(totals),
        digest="",
    )
    return _with_digest(report)


def _with_digest(report: ComplianceReport) -> ComplianceReport:
    values = {f.name: getattr(report, f.name) for f in fields(report)}
    values["digest"] = digest_of(report)
    return ComplianceReport(**values)


__all__ = [
    "ComplianceReport",
    "ControlEvidence",
    "DeviceRow",
    "FleetTotals",
    "Scope",
    "ScopeError",
    "build_compliance_report",
    "canonical_json",
    "digest_of",
    "plain",
    "report_dict",
]
