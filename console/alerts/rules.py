"""Which (rule, device) conditions hold now, computed from the database in
bulk: a fixed number of queries whatever the fleet size (devices, group
memberships, thresholds, the last verification per device, bytes added in
the growth windows), then plain Python over the rows. No per-device query.

Every value a PC reported (statistics, damaged file names, sizes) is
untrusted: bounded and type-checked here before it reaches a message.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import F, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from console.alerts.models import Rule, Thresholds
from console.fleet.models import Device
from console.jobs.models import JobRun

#: a device not heard from for this long is offline (offline-allowance rule)
OFFLINE_AFTER = dt.timedelta(minutes=15)
#: job kinds whose ``stats["damaged_files"]`` reports damage
CHECK_KINDS = ("verify", "test_restore")
FINISHED = ("succeeded", "failed")
#: at most this many damaged file names are kept on an alert
NAMES_KEPT = 20
NAME_CHARS = 300

DEVICE_FIELDS = (
    "id",
    "hostname",
    "enrolled_at",
    "last_seen_at",
    "last_success_at",
    "protected_until",
    "rpo",
    "consecutive_failures",
    "storage_bytes",
    "cert_expires_at",
    "spool_lease_expires_at",
)


@dataclass(frozen=True)
class Limits:
    """The thresholds in force for one device (merged over its groups)."""

    enabled: frozenset[str]
    failures_in_a_row: int
    not_seen_days: int
    growth_window_hours: int
    growth_bytes: int
    repository_limit_bytes: int
    storage_full_percent: int
    cert_expiry_days: int
    offline_allowance_hours: int


def default_thresholds() -> Thresholds:
    """The organisation default (an unsaved row with the model defaults if
    none was saved yet)."""
    return Thresholds.objects.filter(group__isnull=True).first() or Thresholds()


def merge(rows: list[Thresholds]) -> Limits:
    """Strictest of several groups' thresholds: a rule is on if any group has
    it on, and each threshold takes the value that alerts soonest."""
    limits = [r.repository_limit_bytes for r in rows if r.repository_limit_bytes > 0]
    return Limits(
        enabled=frozenset(f for f in Thresholds.RULE_FIELDS if any(getattr(r, f) for r in rows)),
        failures_in_a_row=max(1, min(r.failures_in_a_row for r in rows)),
        not_seen_days=max(1, min(r.not_seen_days for r in rows)),
        growth_window_hours=max(1, max(r.growth_window_hours for r in rows)),
        growth_bytes=max(1, min(r.growth_bytes for r in rows)),
        repository_limit_bytes=min(limits) if limits else 0,
        storage_full_percent=max(1, min(r.storage_full_percent for r in rows)),
        cert_expiry_days=max(r.cert_expiry_days for r in rows),
        offline_allowance_hours=max(r.offline_allowance_hours for r in rows),
    )


@dataclass
class Firing:
    message: str
    detail: dict = field(default_factory=dict)


def limits_by_device(device_ids) -> dict:
    """device id → Limits: the device's groups' rows if any group has one,
    else the organisation default. Three queries."""
    default = merge([default_thresholds()])
    by_group = {t.group_id: t for t in Thresholds.objects.filter(group__isnull=False)}
    rows_of: dict = {}
    if by_group:
        through = Device.groups.through.objects.filter(devicegroup_id__in=list(by_group))
        for device_id, group_id in through.values_list("device_id", "devicegroup_id"):
            rows_of.setdefault(device_id, []).append(group_id)
    cache: dict = {}
    out = {}
    for device_id in device_ids:
        groups = rows_of.get(device_id)
        if not groups:
            out[device_id] = default
            continue
        key = frozenset(groups)
        if key not in cache:
            cache[key] = merge([by_group[g] for g in key])
        out[device_id] = cache[key]
    return out


def _latest_checks():
    """Id of each device's latest finished verification or test restore: one
    DISTINCT ON scan on PostgreSQL, a correlated subquery elsewhere."""
    checks = JobRun.objects.filter(kind__in=CHECK_KINDS, state__in=FINISHED, device__revoked=False)
    if connection.vendor == "postgresql":
        return list(
            checks.order_by("device_id", "-started_at", "-id")
            .distinct("device_id")
            .values_list("id", flat=True)
        )
    latest = (
        JobRun.objects.filter(device=OuterRef("pk"), kind__in=CHECK_KINDS, state__in=FINISHED)
        .order_by("-started_at", "-id")
        .values("id")[:1]
    )
    return list(
        Device.objects.filter(revoked=False)
        .annotate(check=Subquery(latest))
        .exclude(check=None)
        .values_list("check", flat=True)
    )


def _damage(now) -> dict:
    """device id → damaged file names (bounded) of its latest finished
    verification or test restore, for devices whose latest one found damage."""
    ids = _latest_checks()
    out = {}
    for start in range(0, len(ids), 5000):
        rows = JobRun.objects.filter(
            pk__in=ids[start : start + 5000], stats__has_key="damaged_files"
        ).values_list("device_id", "id", "kind", "finished_at", F("stats__damaged_files"))
        for device_id, run_id, kind, finished_at, damaged in rows:
            names = _names(damaged)
            if names is not None:
                out[device_id] = (run_id, kind, finished_at, names)
    return out


def _names(damaged) -> tuple[int, list[str]] | None:
    """(count, first names) of a reported damaged_files value, or None if it
    reports no damage. A list of names, or anything else non-empty (counted
    as one unnamed damage: the agent said something is damaged)."""
    if not damaged:
        return None
    if isinstance(damaged, list):
        names = []
        for item in damaged[:NAMES_KEPT]:
            if isinstance(item, dict):
                item = item.get("path") or item.get("name") or ""
            names.append(clean(str(item), NAME_CHARS))
        return len(damaged), names
    return 1, []


def clean(text: str, limit: int) -> str:
    """Reported text made safe to show: no control characters, bounded."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def _growth(device_ids_by_window: dict, now) -> dict:
    """device id → bytes added by its backups within its growth window (one
    aggregate query per distinct window length; ids None: every device)."""
    out = {}
    for hours, ids in device_ids_by_window.items():
        since = now - dt.timedelta(hours=hours)
        rows = (
            JobRun.objects.filter(kind="backup", started_at__gte=since, bytes_added__gt=0)
            .values("device_id")
            .annotate(total=Sum("bytes_added"))
            .values_list("device_id", "total")
        )
        out.update({d: t for d, t in rows if ids is None or d in ids})
    return out


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _ago(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"


def _candidates(rows: list[Thresholds], now) -> Q:
    """Devices that may meet a rule under the loosest thresholds in use: the
    database narrows the fleet to these; each is then judged in Python by its
    own thresholds (a healthy fleet reads almost no rows)."""
    on = {f for f in Thresholds.RULE_FIELDS if any(getattr(r, f) for r in rows)}
    q = Q(pk__in=[])
    if Rule.OUT_OF_RPO in on:
        q |= Q(protected_until__lt=now) | Q(
            protected_until__isnull=True, last_success_at__isnull=True
        )
    if Rule.FAILURES in on:
        q |= Q(consecutive_failures__gte=max(1, min(r.failures_in_a_row for r in rows)))
    if Rule.NOT_SEEN in on:
        since = now - dt.timedelta(days=max(1, min(r.not_seen_days for r in rows)))
        q |= Q(last_seen_at__lt=since) | Q(last_seen_at__isnull=True)
    limits = [r for r in rows if r.repository_limit_bytes > 0]
    if Rule.STORAGE_FULL in on and limits:
        q |= Q(
            storage_bytes__gte=min(
                r.repository_limit_bytes * max(1, r.storage_full_percent) // 100 for r in limits
            )
        )
    if Rule.CERT_EXPIRY in on:
        days = max(r.cert_expiry_days for r in rows)
        q |= Q(cert_expires_at__lt=now + dt.timedelta(days=days))
    if Rule.OFFLINE_ALLOWANCE in on:
        hours = max(r.offline_allowance_hours for r in rows)
        q |= Q(spool_lease_expires_at__lt=now + dt.timedelta(hours=hours)) & (
            Q(last_seen_at__lt=now - OFFLINE_AFTER) | Q(last_seen_at__isnull=True)
        )
    return q


def firing(now=None) -> dict[tuple[str, object], Firing]:
    """(rule, device id) → Firing for every condition that holds now."""
    now = now or timezone.now()
    rows = [default_thresholds(), *Thresholds.objects.filter(group__isnull=False)]
    damage = _damage(now)
    growth_hours = max(r.growth_window_hours for r in rows)
    growth_on = any(r.growth for r in rows)
    growth = _growth({growth_hours: None}, now) if growth_on else {}
    growth_floor = min(r.growth_bytes for r in rows)
    heavy = [d for d, total in growth.items() if total > growth_floor]
    devices = list(
        Device.objects.filter(revoked=False)
        .filter(_candidates(rows, now) | Q(pk__in=[*damage, *heavy]))
        .order_by()
        .values_list(*DEVICE_FIELDS)
    )
    limits = limits_by_device([d[0] for d in devices])
    windows: dict = {}
    for d in devices:
        lim = limits[d[0]]
        if Rule.GROWTH in lim.enabled and lim.growth_window_hours != growth_hours:
            windows.setdefault(lim.growth_window_hours, set()).add(d[0])
    growth.update(_growth(windows, now))
    out: dict = {}
    for row in devices:
        _device_rules(out, row, limits[row[0]], growth, damage, now)
    return out


def _device_rules(out, row, lim: Limits, growth, damage, now) -> None:
    (pk, _host, enrolled, seen, success, protected_until, rpo, failures, size, cert, lease) = row
    on = lim.enabled
    if Rule.OUT_OF_RPO in on:
        deadline = protected_until or ((enrolled + rpo) if not success else None)
        if deadline is not None and deadline < now:
            last = f"last good backup {_ago(now - success)} ago" if success else "never backed up"
            out[(Rule.OUT_OF_RPO, pk)] = Firing(
                f"Out of RPO ({_ago(rpo)}): {last}",
                {"rpo_seconds": int(rpo.total_seconds()), "last_success_at": success},
            )
    if Rule.FAILURES in on and failures >= lim.failures_in_a_row:
        out[(Rule.FAILURES, pk)] = Firing(
            f"{failures} backups failed in a row", {"failures": failures}
        )
    if Rule.NOT_SEEN in on:
        last = seen or enrolled
        if last < now - dt.timedelta(days=lim.not_seen_days):
            out[(Rule.NOT_SEEN, pk)] = Firing(
                f"Not seen for {_ago(now - last)} (threshold {lim.not_seen_days} days)",
                {"last_seen_at": seen},
            )
    if Rule.DAMAGE in on and pk in damage:
        run_id, kind, finished_at, (count, names) = damage[pk]
        shown = ", ".join(names[:5]) + (" …" if count > 5 else "")
        out[(Rule.DAMAGE, pk)] = Firing(
            clean(
                f"{kind.replace('_', ' ').capitalize()} found {count} damaged file(s): {shown}", 480
            ),
            {"job_run": run_id, "kind": kind, "count": count, "files": names},
        )
    if Rule.GROWTH in on and growth.get(pk, 0) > lim.growth_bytes:
        added = growth[pk]
        out[(Rule.GROWTH, pk)] = Firing(
            f"Repository grew by {_size(added)} in {lim.growth_window_hours} h "
            f"(threshold {_size(lim.growth_bytes)})",
            {"bytes_added": added, "window_hours": lim.growth_window_hours},
        )
    limit = lim.repository_limit_bytes
    if Rule.STORAGE_FULL in on and limit > 0 and size * 100 >= limit * lim.storage_full_percent:
        out[(Rule.STORAGE_FULL, pk)] = Firing(
            f"Repository at {size * 100 // limit}% of its {_size(limit)} allowance",
            {"storage_bytes": size, "limit_bytes": limit},
        )
    if Rule.CERT_EXPIRY in on and cert and cert < now + dt.timedelta(days=lim.cert_expiry_days):
        when = "expired" if cert <= now else f"expires in {_ago(cert - now)}"
        out[(Rule.CERT_EXPIRY, pk)] = Firing(
            f"Device certificate {when}", {"cert_expires_at": cert}
        )
    if Rule.OFFLINE_ALLOWANCE in on and lease is not None:
        offline = seen is None or seen < now - OFFLINE_AFTER
        if offline and lease < now + dt.timedelta(hours=lim.offline_allowance_hours):
            when = "ran out" if lease <= now else f"runs out in {_ago(lease - now)}"
            out[(Rule.OFFLINE_ALLOWANCE, pk)] = Firing(
                f"Offline backup allowance {when}", {"spool_lease_expires_at": lease}
            )
