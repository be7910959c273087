"""A compliance report as a file, from the daily device history.

    python manage.py compliance_report --from 2026-09-01 --to 2026-11-30 \
        [--group ID | --policy ID] --format csv|json|pdf --output FILE

The file's SHA-256 is kept (GeneratedReport) and the export audited, as for
the API's /api/v1/reports/compliance/.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from console.audit.services import SYSTEM
from console.reports import compliance, exports
from console.reports.history import last_closed_day
from console.reports.management.commands.reports_backfill import day
from console.reports.models import ReportFormat


class Command(BaseCommand):
    help = "Write a compliance report (CSV, JSON or PDF) for a period and a scope."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD")
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("--group", type=int, help="only this group's days")
        scope.add_argument("--policy", type=int, help="only this policy's days")
        parser.add_argument("--format", choices=ReportFormat.values, default=ReportFormat.PDF)
        parser.add_argument(
            "--output", required=True, help="file to write ('-': stdout, not for PDF)"
        )

    def handle(self, *args, start, end, group, policy, format, output, **options):
        start, end = day(start), day(end)
        if end > last_closed_day():
            raise CommandError("the history covers closed days: --to must be before today (UTC)")
        try:
            if group is not None:
                scope = compliance.Scope.group(group)
            elif policy is not None:
                scope = compliance.Scope.policy(policy)
            else:
                scope = compliance.Scope.all()
            report = compliance.build_compliance_report(start, end, scope)
        except compliance.ScopeError as exc:
            raise CommandError(str(exc)) from None
        data, kept = exports.export(SYSTEM, report, scope, format)
        if output == "-":
            self.stdout.write(data.decode("utf-8", "replace"), ending="")
        else:
            Path(output).write_bytes(data)
        self.stderr.write(
            f"{report.scope_label}, {start}..{end}: {report.totals.devices} devices, "
            f"{len(data)} bytes, sha256 {kept.sha256} (report #{kept.pk})"
        )
