"""The Celery workers' metrics: tasks run, by task and outcome, and how long
they took.

Under the default prefork pool tasks run in child processes, so the counters
use prometheus_client's multiprocess mode: set ``PROMETHEUS_MULTIPROC_DIR``
to an empty folder of the worker's own in its environment (deploy/ does), each
child writes its values there, and the exporter in the worker's main process
(``CAIRN_WORKER_METRICS_BIND``, started when the worker starts) adds them up
on scrape. Without it (threads or solo pool) the counters live in the one
process and the exporter serves them directly.

``connect()`` wires the handlers to Celery's signals (console/celery.py).
"""

from __future__ import annotations

import glob
import logging
import os
import time

from celery import signals
from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess

from console.metrics.exporter import Exporter

log = logging.getLogger("cairn.metrics")

TASKS = Counter(
    "cairn_worker_tasks",
    "Celery tasks finished by this worker, by task and state",
    ["task", "state"],
)
DURATION = Histogram(
    "cairn_worker_task_duration_seconds",
    "Time Celery tasks took, by task",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800),
)

_started: dict[str, float] = {}
_exporter: Exporter | None = None


def multiproc_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def registry():
    folder = multiproc_dir()
    if not folder:
        return REGISTRY
    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg, path=folder)
    return reg


def _task_name(sender, task) -> str:
    return str(getattr(task or sender, "name", "") or "unknown")[:200]


def on_prerun(sender=None, task_id=None, task=None, **kwargs):
    if task_id:
        _started[task_id] = time.monotonic()


def on_postrun(sender=None, task_id=None, task=None, state=None, **kwargs):
    name = _task_name(sender, task)
    TASKS.labels(name, (state or "UNKNOWN").lower()).inc()
    began = _started.pop(task_id, None)
    if began is not None:
        DURATION.labels(name).observe(time.monotonic() - began)


def _forks(worker) -> bool:
    """Does this worker run tasks in child processes (the prefork pool)?"""
    pool = getattr(worker, "pool_cls", None) or "prefork"
    name = pool if isinstance(pool, str) else f"{pool.__module__}.{pool.__qualname__}"
    return "prefork" in name or name == "processes"


def on_worker_init(sender=None, **kwargs):
    """In the worker's main process, before the pool starts: a clean
    multiprocess folder (values of an earlier run would be added in) and the
    exporter."""
    global _exporter
    bind = getattr(settings, "WORKER_METRICS_BIND", "")
    folder = multiproc_dir()
    if folder:
        os.makedirs(folder, exist_ok=True)
        for stale in glob.glob(os.path.join(folder, "*.db")):
            os.remove(stale)
    if bind and _exporter is None:
        if not folder and _forks(sender):
            # The children's counters would never reach this process: a
            # scrape would show a worker that ran nothing. Say so instead.
            log.error(
                "worker metrics not served on %s: the prefork pool needs "
                "PROMETHEUS_MULTIPROC_DIR (an empty folder of this worker's own)",
                bind,
            )
            return
        try:
            _exporter = Exporter(bind, registry()).start()
        except (OSError, ValueError) as exc:
            log.error("worker metrics: cannot serve on %s: %s", bind, exc)


def on_process_shutdown(pid=None, **kwargs):
    if multiproc_dir():
        multiprocess.mark_process_dead(pid or os.getpid())


def on_worker_shutdown(sender=None, **kwargs):
    global _exporter
    if _exporter is not None:
        _exporter.stop()
        _exporter = None


def connect() -> None:
    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_postrun.connect(on_postrun, weak=False)
    signals.worker_init.connect(on_worker_init, weak=False)
    signals.worker_process_shutdown.connect(on_process_shutdown, weak=False)
    signals.worker_shutdown.connect(on_worker_shutdown, weak=False)
