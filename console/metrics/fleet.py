"""Fleet gauges, computed from the database when Prometheus scrapes.

A handful of bulk queries over indexed columns (one aggregate for the
protection states, one row per device for the backup ages, one grouped count
of the last 24 h of jobs, the rollout query of the overview page) and one
round trip to the broker; the result is kept ``CAIRN_METRICS_CACHE_SECONDS``
(5) in the process, so several Prometheus servers scraping at once cost one
computation.

Label values that come from PCs (hostnames) are untrusted: prometheus_client
escapes quotes, backslashes and newlines, and ``label()`` also replaces other
control characters and bounds the length, so a hostile hostname can neither
break the exposition format nor blow up a series.
"""

from __future__ import annotations

import math
import os
import threading
import time
from datetime import timedelta

import redis
from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from console.fleet.models import Device, Protection
from console.fleet.queries import status_q
from console.jobs.models import JobKind, JobRun, JobState
from console.policies.services import rollout_progress

#: longest label value taken from a PC or an admin (hostnames, policy names)
LABEL_MAX = 64
#: kombu's Redis transport keeps priorities 3, 6 and 9 in lists of their own
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


def label(value: str, limit: int = LABEL_MAX) -> str:
    """A label value safe to expose: control characters replaced, at most
    ``limit`` characters (a cut value ends with '…')."""
    clean = str(value)
    if not clean.isprintable():
        clean = "".join(c if c.isprintable() else "?" for c in clean)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _protection(now) -> GaugeMetricFamily:
    states = [Protection.PROTECTED, Protection.AT_RISK, Protection.UNPROTECTED, Protection.REVOKED]
    raw = Device.objects.aggregate(
        **{s.value: Count("pk", filter=status_q(s, now)) for s in states}
    )
    g = GaugeMetricFamily(
        "cairn_devices",
        "Devices by protection state (protected: last good backup within the RPO; "
        "at_risk: within 3 x RPO; unprotected: older or never; revoked)",
        labels=["state"],
    )
    for s in states:
        g.add_metric([s.value], raw[s.value] or 0)
    return g


def _backup_ages(now) -> GaugeMetricFamily:
    g = GaugeMetricFamily(
        "cairn_device_last_good_backup_age_seconds",
        "Seconds since the device's last successful backup (+Inf: never backed up); "
        "active (not revoked) devices only",
        labels=["device", "hostname"],
    )
    # One fetch: 10,000 rows of three columns is about 1 MB, less than
    # the text the scrape returns; a server-side cursor only adds round trips.
    rows = (
        Device.objects.filter(revoked=False)
        .order_by()
        .values_list("id", "hostname", "last_success_at")
    )
    for device_id, hostname, last_success in rows:
        age = (now - last_success).total_seconds() if last_success else math.inf
        g.add_metric([str(device_id), label(hostname)], max(age, 0.0))
    return g


def _jobs(now) -> GaugeMetricFamily:
    g = GaugeMetricFamily(
        "cairn_jobs_last_24h",
        "Jobs started in the last 24 hours, by kind and current state",
        labels=["kind", "state"],
    )
    counts = {(k, s): 0 for k in JobKind.values for s in JobState.values}
    rows = (
        JobRun.objects.filter(started_at__gte=now - timedelta(hours=24))
        .order_by()
        .values_list("kind", "state")
        .annotate(n=Count("pk"))
    )
    for kind, state, n in rows:
        counts[(kind, state)] = n
    for (kind, state), n in sorted(counts.items()):
        g.add_metric([label(kind), label(state)], n)
    return g


def queue_length(queue: str) -> int | None:
    """Tasks waiting in the Celery queue ``queue``: the lengths of its Redis
    lists (the default list and kombu's priority lists), or the messages in
    the embedded broker's folder. None when the broker cannot be reached."""
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in", "")
        try:
            # kombu's own test: <time>_<uuid>.<queue>.msg
            return sum(1 for n in os.listdir(folder) if n.partition(".")[2] == f"{queue}.msg")
        except OSError:
            return 0
    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        with client.pipeline(transaction=False) as pipe:
            pipe.llen(queue)
            for step in _PRIORITY_STEPS:
                pipe.llen(f"{queue}{_PRIORITY_SEP}{step}")
            return sum(pipe.execute())
    except redis.RedisError:
        return None


def _queue() -> list[GaugeMetricFamily]:
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    n = queue_length(queue)
    up = GaugeMetricFamily("cairn_broker_up", "1 if the Celery broker answered this scrape")
    up.add_metric([], 0 if n is None else 1)
    g = GaugeMetricFamily(
        "cairn_celery_queue_length", "Tasks waiting in the Celery queue", labels=["queue"]
    )
    if n is not None:
        g.add_metric([label(queue)], n)
    return [up, g]


def _rollout() -> list[GaugeMetricFamily]:
    names = ["policy_id", "policy", "revision"]
    targeted = GaugeMetricFamily(
        "cairn_policy_rollout_targeted_devices",
        "Devices whose effective policy revision is this one",
        labels=names,
    )
    acked = GaugeMetricFamily(
        "cairn_policy_rollout_acknowledged_devices",
        "Of those, devices whose agent reports running it",
        labels=names,
    )
    for row in rollout_progress():
        values = [str(row["policy"].pk), label(row["policy"].name), str(row["revision"].number)]
        targeted.add_metric(values, row["targeted"])
        acked.add_metric(values, row["acknowledged"])
    return [targeted, acked]


def compute(now=None) -> list[GaugeMetricFamily]:
    now = now or timezone.now()
    started = time.monotonic()
    families = [_protection(now), _backup_ages(now), _jobs(now), *_queue(), *_rollout()]
    took = GaugeMetricFamily(
        "cairn_fleet_metrics_compute_seconds", "Time the last computation of these gauges took"
    )
    took.add_metric([], time.monotonic() - started)
    return [*families, took]


class FleetCollector(Collector):
    """The gauges above, cached ``CAIRN_METRICS_CACHE_SECONDS`` per process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._cached: list | None = None
        self._at = 0.0

    def clear(self) -> None:
        with self._lock:
            self._cached = None

    def collect(self):
        ttl = float(getattr(settings, "CAIRN_METRICS_CACHE_SECONDS", 5))
        with self._lock:
            if self._cached is None or time.monotonic() - self._at >= ttl:
                self._cached = compute()
                self._at = time.monotonic()
            return list(self._cached)

    def describe(self):
        return []  # computed on scrape: nothing to check at registration


collector = FleetCollector()
registry = CollectorRegistry(auto_describe=False)
registry.register(collector)
