"""Compliance reports as files (JSON, CSV, PDF), the digest of every file
handed out, and the check of a copy brought back.

Each file generated through ``export`` is recorded as a GeneratedReport (who,
when, scope, period, format, SHA-256 of the exact bytes) and in the audit log;
``verify`` answers whether some bytes are exactly a file the console handed
out, and which.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

from console.audit.services import Actor, record
from console.core.spreadsheet import safe_row
from console.reports import pdf
from console.reports.compliance import ComplianceReport, Scope, plain
from console.reports.models import GeneratedReport, ReportFormat

CONTENT_TYPES = {
    ReportFormat.JSON: "application/json",
    ReportFormat.CSV: "text/csv; charset=utf-8",
    ReportFormat.PDF: "application/pdf",
}
MAX_VERIFY_BYTES = 256 * 1024 * 1024

CSV_COLUMNS = [
    "status",
    "device_id",
    "hostname",
    "groups",
    "rpo_hours",
    "achieved_share",
    "last_good_backup",
    "last_seen",
    "successes",
    "failures",
    "bytes_added",
    "repository_bytes",
    "encryption",
    "retention",
    "immutability",
    "last_verification",
    "verification_result",
    "last_test_restore",
    "test_restore_result",
    "rto_seconds",
    "restore_throughput_bps",
]


def to_json(report: ComplianceReport) -> bytes:
    # no indent: json's C encoder (10,000 rows in a fraction of a second)
    return json.dumps(plain(report), default=_cell, ensure_ascii=False).encode()


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return value


def to_csv(report: ComplianceReport) -> bytes:
    """One row per device, every cell through safe_row (host and group names,
    file names in results were written by PCs or admins)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in report.devices:
        writer.writerow(safe_row(_cell(getattr(row, c)) for c in CSV_COLUMNS))
    return out.getvalue().encode("utf-8")


def render(report: ComplianceReport, fmt: str) -> bytes:
    if fmt == ReportFormat.JSON:
        return to_json(report)
    if fmt == ReportFormat.CSV:
        return to_csv(report)
    if fmt == ReportFormat.PDF:
        return pdf.render_pdf(report)
    raise ValueError(f"unknown format {fmt!r}: json, csv or pdf")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export(
    actor: Actor, report: ComplianceReport, scope: Scope, fmt: str
) -> tuple[bytes, GeneratedReport]:
    """The report as a file, its digest kept and the export audited."""
    data = render(report, fmt)
    kept = GeneratedReport.objects.create(
        generated_at=report.generated_at,
        generated_by=actor.user,
        generated_by_name=actor.name[:150],
        via=actor.via,
        scope=report.scope_label[:255],
        scope_kind=scope.kind,
        scope_id=scope.id,
        start=report.start,
        end=report.end,
        format=fmt,
        sha256=sha256(data),
        report_digest=report.digest,
        size=len(data),
    )
    record(
        actor,
        "report.export",
        kept,
        after={
            "scope": kept.scope,
            "start": kept.start,
            "end": kept.end,
            "format": fmt,
            "sha256": kept.sha256,
        },
    )
    return data, kept


@dataclass(frozen=True)
class Verdict:
    match: bool
    sha256: str
    report: GeneratedReport | None

    @property
    def message(self) -> str:
        if self.report is None:
            return "no match: the console never handed out a file with these exact bytes"
        r = self.report
        return (
            f"matches compliance report #{r.pk} ({r.scope}, {r.start}..{r.end}, {r.format}) "
            f"generated at {r.generated_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC "
            f"by {r.generated_by_name}"
        )


def verify(actor: Actor, data: bytes) -> Verdict:
    digest = sha256(data)
    found = GeneratedReport.objects.filter(sha256=digest).order_by("generated_at", "pk").first()
    verdict = Verdict(found is not None, digest, found)
    record(
        actor,
        "report.verify",
        found,
        target_type=None if found else "generatedreport",
        target_id=None if found else "",
        target_repr=None if found else "no match",
        after={"sha256": digest, "match": verdict.match},
    )
    return verdict
