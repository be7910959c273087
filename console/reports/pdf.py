"""The compliance report as a PDF document (reportlab).

``render_pdf(report)`` turns a ``ComplianceReport`` (console/reports/compliance.py)
into a document an auditor can file as it is:

1. a cover summary: scope, period, verdict and the fleet totals;
2. a chart: how many devices reached which share of time within their RPO;
3. the controls each section evidences (ISO/IEC 27001:2022 A.8.13, SOC 2
   A1.2/A1.3, HIPAA §164.308(a)(7)(ii)(A)/(D)) with their evidence and result;
4. per-device tables: recovery (RPO target, achieved share, last good backup,
   measured RTO and restore throughput) and protection (encryption, retention,
   immutability, last verification and test restore with their results).
   Long tables split across pages and repeat their header row.

Every page's footer states when the report was generated, from what data,
its digest and "page x of y". Every text that a PC wrote (hostnames, group
names) is untrusted: it is escaped for reportlab's paragraph markup, stripped
of control characters and bounded in length before it reaches the document.

The parts live beside this module: pdf_text (geometry, styles, formatting of
untrusted text), pdf_page (the footer), pdf_cover (verdict, totals, chart) and
pdf_grid (the fast device tables).
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import (
    KeepTogether,
    LongTable,
    NextPageTemplate,
    PageBreak,
    Paragraph,
    Spacer,
    TableStyle,
)
from reportlab.platypus.doctemplate import BaseDocTemplate, PageTemplate
from reportlab.platypus.frames import Frame

from console.reports.pdf_cover import bucket_counts, cover_section, verdict
from console.reports.pdf_grid import DeviceRows
from console.reports.pdf_page import NumberedCanvas, footer_text
from console.reports.pdf_text import (
    BODY,
    CELL,
    CELL_HEAD,
    FOOTER_HEIGHT,
    H2,
    HEAD_BG,
    MARGIN,
    PAGE,
    RULE,
    ZEBRA,
    clean_text,
    control_colour,
    fmt_bytes,
    fmt_duration,
    fmt_rate,
    fmt_share,
    fmt_value,
    fmt_when,
    para,
    passed,
)

# The dashboard reads these from here (its imports predate the split).
__all__ = ["bucket_counts", "passed", "render_pdf", "verdict"]


def render_pdf(report) -> bytes:
    """The report as PDF bytes (deterministic apart from reportlab's document id)."""
    buffer = io.BytesIO()
    footer = footer_text(report)
    doc = BaseDocTemplate(
        buffer,
        pagesize=PAGE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + FOOTER_HEIGHT,
        title=f"Backup compliance report {fmt_when(report.start)} – {fmt_when(report.end)}",
        author="Cairn console",
        subject=f"Scope: {clean_text(report.scope_label)}; digest {report.digest}",
        creator="Cairn console (reportlab)",
    )
    frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body")
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame])])
    story = [NextPageTemplate("page")]
    story += cover_section(report)
    story += [PageBreak()]
    story += _controls_section(report)
    story += [PageBreak()]
    story += _recovery_table(report)
    story += [PageBreak()]
    story += _protection_table(report)
    doc.build(story, canvasmaker=lambda *a, **kw: NumberedCanvas(*a, footer=footer, **kw))
    return buffer.getvalue()


def _table_style(header_rows: int = 1) -> TableStyle:
    return TableStyle(
        [
            ("BACKGROUND", (0, 0), (-1, header_rows - 1), HEAD_BG),
            ("ROWBACKGROUNDS", (0, header_rows), (-1, -1), [colors.white, ZEBRA]),
            ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ("LEFTPADDING", (0, 0), (-1, -1), 3),
            ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ]
    )


def _controls_section(report) -> list:
    header = [Paragraph(h, CELL_HEAD) for h in ("Control", "Requirement", "Evidenced by", "Result")]
    rows = [header]
    for c in report.controls:
        result = ParagraphStyle("cr", parent=CELL, textColor=control_colour(c.result))
        rows.append(
            [
                Paragraph(
                    f"<b>{escape(clean_text(c.framework))}</b><br/>{escape(clean_text(c.control))}",
                    CELL,
                ),
                para(c.title, CELL, 240),
                para(fmt_value(c.evidenced_by), CELL, 400),
                para(c.result, result, 600),
            ]
        )
    table = LongTable(rows, colWidths=[38 * mm, 62 * mm, 80 * mm, 89 * mm], repeatRows=1)
    table.setStyle(_table_style())
    return [
        Paragraph("Controls evidenced", H2),
        Paragraph(
            "Each control below is evidenced by the sections of this report named beside it. "
            "The device tables that follow are the evidence itself.",
            BODY,
        ),
        Spacer(1, 2 * mm),
        table,
    ]


RECOVERY_HEAD = (
    "Device",
    "Groups",
    "Status",
    "RPO target",
    "Within RPO",
    "Last good backup",
    "Last seen",
    "OK / failed",
    "Added",
    "Repository",
    "Measured RTO",
    "Restore rate",
)


def _recovery_table(report) -> list:
    rows = DeviceRows(RECOVERY_HEAD, [34, 30, 20, 16, 17, 27, 27, 17, 18, 20, 21, 22], results=(2,))
    for d in report.devices:
        rows.add(
            [
                d.hostname,
                fmt_value(d.groups),
                d.status,
                "—" if d.rpo_hours is None else f"{float(d.rpo_hours):g} h",
                fmt_share(d.achieved_share),
                fmt_when(d.last_good_backup, zone=False),
                fmt_when(d.last_seen, zone=False),
                f"{d.successes} / {d.failures}",
                fmt_bytes(d.bytes_added),
                fmt_bytes(d.repository_bytes),
                fmt_duration(d.rto_seconds),
                fmt_rate(d.restore_throughput_bps),
            ]
        )
    return [
        Paragraph("Recovery objectives per device", H2),
        Paragraph(
            "RPO target from the policy in force; achieved share of the period within it; measured RTO is the "
            "duration of the device's last automated test restore (throughput beside it). Devices never backed "
            "up and devices not seen are listed first. Times are UTC.",
            BODY,
        ),
        Spacer(1, 2 * mm),
        *rows.tables(),
    ]


PROTECTION_HEAD = (
    "Device",
    "Encryption",
    "Retention",
    "Immutability",
    "Last verification",
    "Verification result",
    "Last test restore",
    "Test restore result",
)


def _common(report, name: str) -> str | None:
    """The value every device shares for ``name``, else None."""
    values = {fmt_value(getattr(d, name)) for d in report.devices}
    return values.pop() if len(values) == 1 else None


def _protection_table(report) -> list:
    shared = {name: _common(report, name) for name in ("encryption", "immutability")}
    columns = [("Device", 40, "hostname", 48)]
    columns += [
        (name.capitalize(), 45, name, 160)
        for name in ("encryption", "immutability")
        if shared[name] is None
    ]
    columns += [
        ("Retention", 55, "retention", 120),
        ("Last verification", 26, "last_verification", 0),
        ("Verification result", 0, "verification_result", 0),
        ("Last test restore", 26, "last_test_restore", 0),
        ("Test restore result", 0, "test_restore_result", 0),
    ]
    fixed = sum(w for _, w, _, _ in columns)
    flexible = (PAGE[0] / mm - 2 * MARGIN / mm - 1 - fixed) / 2
    names = [name for _, _, name, _ in columns]
    rows = DeviceRows(
        [h for h, _, _, _ in columns],
        [w or flexible for _, w, _, _ in columns],
        results=[i for i, n in enumerate(names) if n.endswith("_result")],
    )
    for d in report.devices:
        rows.add(
            [
                fmt_when(getattr(d, n), zone=False)
                if n.startswith("last_")
                else fmt_value(getattr(d, n))
                for n in names
            ]
        )
    tables = rows.tables()
    same = [
        Paragraph(f"<b>{label} (every device):</b> {escape(clean_text(shared[name], 400))}", BODY)
        for name, label in (("encryption", "Encryption"), ("immutability", "Immutability"))
        if shared[name] is not None
    ]
    return [
        KeepTogether(
            [
                Paragraph("Protection in force per device", H2),
                Paragraph(
                    "How each device's data is protected at the end of the period: encryption, retention "
                    "and immutability from the policy in force, and the last verification and test "
                    "restore with what they found (damage names the affected files). Times are UTC.",
                    BODY,
                ),
                *same,
                Spacer(1, 2 * mm),
            ]
        ),
        *tables,
    ]
