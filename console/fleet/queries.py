"""Read side of the fleet, shared by the dashboard and the API: device
statuses and sort orders (applied by console/fleet/filters.py), and the
overview figures. Every function runs a bounded number of queries over
indexed, denormalised columns."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from console.fleet.models import Device, Protection
from console.jobs.models import DailyJobStats, JobRun, JobState
from console.policies.services import rollout_progress

STATUS_CHOICES = [
    ("", "All active"),
    (Protection.PROTECTED, "Protected"),
    (Protection.AT_RISK, "At risk"),
    (Protection.UNPROTECTED, "Unprotected"),
    ("failing", "Last backup failed"),
    ("stale", "Not seen recently"),
    ("out_of_sync", "Policy not yet applied"),
    (Protection.REVOKED, "Revoked"),
]

SORTS = {
    "hostname": ("hostname", "pk"),
    "-hostname": ("-hostname", "-pk"),
    "last_success": (F("last_success_at").asc(nulls_first=True), "pk"),
    "-last_success": (F("last_success_at").desc(nulls_last=True), "pk"),
    "last_seen": (F("last_seen_at").asc(nulls_first=True), "pk"),
    "-last_seen": (F("last_seen_at").desc(nulls_last=True), "pk"),
    "os": ("os", "hostname", "pk"),
    "-os": ("-os", "hostname", "pk"),
    "owner": ("owner", "hostname", "pk"),
    "-owner": ("-owner", "hostname", "pk"),
    "policy": ("effective_policy__name", "hostname", "pk"),
    "-policy": ("-effective_policy__name", "hostname", "pk"),
}


def stale_after() -> timedelta:
    return timedelta(days=getattr(settings, "CAIRN_STALE_DAYS", 7))


def status_q(status: str, now=None) -> Q:
    now = now or timezone.now()
    active = Q(revoked=False)
    if status == Protection.PROTECTED:
        return active & Q(protected_until__gte=now)
    if status == Protection.AT_RISK:
        return (
            active
            & Q(at_risk_until__gte=now)
            & (Q(protected_until__lt=now) | Q(protected_until__isnull=True))
        )
    if status == Protection.UNPROTECTED:
        return active & (Q(at_risk_until__lt=now) | Q(at_risk_until__isnull=True))
    if status == "failing":
        return active & Q(failing=True)
    if status == "stale":
        return active & (Q(last_seen_at__lt=now - stale_after()) | Q(last_seen_at__isnull=True))
    if status == "out_of_sync":
        return active & Q(effective_hash__gt="") & ~Q(applied_hash=F("effective_hash"))
    if status == Protection.REVOKED:
        return Q(revoked=True)
    if status == "all":
        return Q()
    return active


def overview(now=None) -> dict:
    """Fleet figures for the overview page and /api/v1/overview/ (3 queries + rollout)."""
    now = now or timezone.now()
    # Aliases get a prefix: an aggregate may not share a name with a field.
    raw = Device.objects.aggregate(
        n_total=Count("pk", filter=Q(revoked=False)),
        n_protected=Count("pk", filter=status_q(Protection.PROTECTED, now)),
        n_at_risk=Count("pk", filter=status_q(Protection.AT_RISK, now)),
        n_unprotected=Count("pk", filter=status_q(Protection.UNPROTECTED, now)),
        n_failing=Count("pk", filter=status_q("failing", now)),
        n_stale=Count("pk", filter=status_q("stale", now)),
        n_out_of_sync=Count("pk", filter=status_q("out_of_sync", now)),
        n_revoked=Count("pk", filter=Q(revoked=True)),
        n_storage_bytes=Sum("storage_bytes", filter=Q(revoked=False)),
    )
    counts = {k[2:]: v for k, v in raw.items()}
    counts["storage_bytes"] = counts["storage_bytes"] or 0
    today = now.date()
    first = today - timedelta(days=29)
    by_day = {s.day: s for s in DailyJobStats.objects.filter(day__gte=first, day__lte=today)}
    chart = []
    for i in range(30):
        day = first + timedelta(days=i)
        s = by_day.get(day)
        chart.append(
            {
                "day": day,
                "succeeded": s.succeeded if s else 0,
                "failed": s.failed if s else 0,
                "warnings": s.warnings if s else 0,
            }
        )
    failing_devices = list(
        Device.objects.filter(status_q("failing", now))
        .order_by("-consecutive_failures", F("last_backup_at").desc(nulls_last=True), "pk")
        .only("id", "hostname", "os", "consecutive_failures", "last_error", "last_backup_at")[:8]
    )
    running = JobRun.objects.filter(state=JobState.RUNNING).count()
    return {
        "now": now,
        "counts": counts,
        "stale_days": stale_after().days,
        "chart": chart,
        "failing_devices": failing_devices,
        "rollout": rollout_progress(),
        "running_jobs": running,
    }
