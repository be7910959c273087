"""Fill (or refill) the daily device history for closed days.

    python manage.py reports_backfill --from 2026-09-01 --to 2026-11-30

Idempotent: figures from job runs are recomputed, the facts a row already
snapshotted (name, groups, policies, RPO) are kept (console/reports/history.py).
"""

from __future__ import annotations

import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from console.reports import history


def day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"not a day (YYYY-MM-DD): {value!r}") from None


class Command(BaseCommand):
    help = "Fill the daily device history (DeviceDay) for closed UTC days."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD")

    def handle(self, *args, start, end, **options):
        began = time.perf_counter()
        try:
            rows = history.fill_days(day(start), day(end))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        took = time.perf_counter() - began
        self.stdout.write(f"{rows} device-days filled, {start}..{end}, in {took:.1f} s")
