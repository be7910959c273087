"""Timing of the evaluation pass (``make bench-console``): each run is one
full pass over the fleet in a transaction that is rolled back, so every run
measures the first pass (every condition is new: the most writes)."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from dataclasses import dataclass

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.alerts import evaluation
from console.fleet.models import Device


@dataclass
class Timing:
    devices: int
    conditions: int
    median_s: float
    max_s: float
    queries: int
    #: the next pass, a hold-down later: every pending alert fires
    fire_s: float = 0.0
    fired: int = 0


class _Rollback(Exception):
    pass


def measure(repeat: int = 3) -> Timing:
    times, fire_times, conditions, queries, fired = [], [], 0, 0, 0
    for _ in range(max(1, repeat)):
        try:
            with transaction.atomic():
                start = time.perf_counter()
                with CaptureQueriesContext(connection) as captured:
                    conditions = evaluation.evaluate().conditions
                times.append(time.perf_counter() - start)
                queries = len(captured)
                hold = dt.timedelta(minutes=evaluation.settings_row().open_after_minutes)
                start = time.perf_counter()
                fired = len(evaluation.evaluate(timezone.now() + hold).fired)
                fire_times.append(time.perf_counter() - start)
                raise _Rollback
        except _Rollback:
            pass
    return Timing(
        devices=Device.objects.filter(revoked=False).count(),
        conditions=conditions,
        median_s=statistics.median(times),
        max_s=max(times),
        queries=queries,
        fire_s=max(fire_times),
        fired=fired,
    )
