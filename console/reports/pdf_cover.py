"""The PDF report's first page: verdict, scope, fleet totals and the chart of
devices by share of the period within their RPO."""

from __future__ import annotations

from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import (
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from console.reports.pdf_text import (
    BAD,
    BODY,
    GOOD,
    H2,
    MUTED,
    RULE,
    SMALL,
    TITLE,
    VERDICT,
    WARN,
    fmt_bytes,
    fmt_share,
    fmt_when,
    para,
)

# Achieved-share buckets for the chart, best first: (label, lower bound inclusive).
BUCKETS = (("100%", 1.0), ("99–100%", 0.99), ("95–99%", 0.95), ("80–95%", 0.80), ("< 80%", 0.0))


def verdict(report) -> tuple[str, colors.Color]:
    """One sentence on the period, and its colour."""
    totals = report.totals
    short = [d for d in report.devices if d.achieved_share is None or d.achieved_share < 1.0]
    failed_controls = [
        c for c in report.controls if str(c.result).lower() not in ("pass", "passed", "met", "ok")
    ]
    if totals.devices == 0:
        return "No devices in scope for this period.", WARN
    if totals.never_backed_up or totals.not_seen:
        return (
            f"Not met: {totals.never_backed_up} device(s) never backed up, {totals.not_seen} not seen; "
            f"{len(short)} of {totals.devices} below their RPO for part of the period.",
            BAD,
        )
    if short or failed_controls:
        return (
            f"Partly met: {len(short)} of {totals.devices} device(s) were outside their RPO for part of the "
            f"period; {len(failed_controls)} control(s) not fully evidenced.",
            WARN,
        )
    return f"Met: all {totals.devices} devices stayed within their RPO for the whole period.", GOOD


def cover_section(report) -> list:
    totals = report.totals
    sentence, colour = verdict(report)
    style = ParagraphStyle("v", parent=VERDICT, textColor=colour)
    rows = [
        ("Devices in scope", f"{totals.devices}"),
        ("Time within RPO (fleet)", fmt_share(totals.within_rpo_share)),
        ("Never backed up", f"{totals.never_backed_up}"),
        ("Not seen in the period", f"{totals.not_seen}"),
        ("Failed backups", f"{totals.failures}"),
        ("Data added", fmt_bytes(totals.bytes_added)),
        ("Repository size (end of period)", fmt_bytes(totals.repository_bytes)),
        ("Devices verified", f"{totals.verified}"),
        ("Devices with a test restore", f"{totals.test_restored}"),
    ]
    table = Table(
        [[para(k, BODY), Paragraph(f"<b>{escape(v)}</b>", BODY)] for k, v in rows],
        colWidths=[70 * mm, 50 * mm],
        hAlign="LEFT",
    )
    table.setStyle(
        TableStyle(
            [
                ("LINEBELOW", (0, 0), (-1, -1), 0.4, RULE),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    meta = Table(
        [
            [para("Scope", SMALL), para(report.scope_label, BODY, 120)],
            [
                para("Period", SMALL),
                para(
                    f"{fmt_when(report.start)} to {fmt_when(report.end)} (inclusive, UTC days)",
                    BODY,
                ),
            ],
            [para("Generated", SMALL), para(fmt_when(report.generated_at), BODY)],
            [para("Data", SMALL), para(report.source, BODY, 200)],
            [para("Digest", SMALL), para(f"sha256:{report.digest}", BODY, 80)],
        ],
        colWidths=[25 * mm, 200 * mm],
        hAlign="LEFT",
    )
    meta.setStyle(
        TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)])
    )
    return [
        Paragraph("Backup compliance report", TITLE),
        meta,
        Spacer(1, 5 * mm),
        Paragraph(escape(sentence), style),
        Spacer(1, 4 * mm),
        side_by_side([Paragraph("Fleet totals", H2), table], chart_section(report)),
        Spacer(1, 3 * mm),
        Paragraph(
            "The share within RPO is the time each device spent with a good backup younger than its policy's "
            "RPO, over the period, from the job history (not from today's state). The digest identifies the "
            "report's data: a copy handed to an auditor can be checked against the console's record.",
            SMALL,
        ),
    ]


def side_by_side(left: list, right: list) -> Table:
    outer = Table([[left, right]], colWidths=[125 * mm, 140 * mm], hAlign="LEFT")
    outer.setStyle(
        TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)])
    )
    return outer


def bucket_counts(report) -> list[tuple[str, int]]:
    """Devices per achieved-share bucket, plus those with no good backup at all."""
    counts = {label: 0 for label, _ in BUCKETS}
    never = 0
    for device in report.devices:
        if device.achieved_share is None or device.last_good_backup is None:
            never += 1
            continue
        share = float(device.achieved_share)
        for label, low in BUCKETS:
            if share >= low:
                counts[label] += 1
                break
    return [*counts.items(), ("no backup", never)]


def nice_step(top: int) -> int:
    """An axis step of 1, 2 or 5 times a power of ten giving at most 6 ticks."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            if top / step <= 6:
                return step
        magnitude *= 10


def chart_section(report) -> list:
    data = bucket_counts(report)
    drawing = Drawing(135 * mm, 72 * mm)
    chart = VerticalBarChart()
    chart.x, chart.y = 10 * mm, 8 * mm
    chart.width, chart.height = 120 * mm, 56 * mm
    chart.data = [[n for _, n in data]]
    chart.categoryAxis.categoryNames = [label for label, _ in data]
    chart.categoryAxis.labels.fontSize = 8
    chart.valueAxis.valueMin = 0
    top = max([n for _, n in data] + [1])
    step = nice_step(top)
    chart.valueAxis.valueStep = step
    chart.valueAxis.valueMax = (top // step + 1) * step
    chart.valueAxis.labels.fontSize = 7
    chart.bars.strokeColor = None
    palette = [
        GOOD,
        colors.HexColor("#48a14d"),
        colors.HexColor("#d69e2e"),
        WARN,
        BAD,
        colors.HexColor("#7b8794"),
    ]
    for i, colour in enumerate(palette):
        chart.bars[(0, i)].fillColor = colour
    chart.barLabelFormat = "%d"
    chart.barLabels.fontSize = 8
    chart.barLabels.nudge = 6
    drawing.add(chart)
    drawing.add(
        String(
            10 * mm,
            68 * mm,
            "Devices by share of the period within RPO",
            fontSize=8,
            fillColor=MUTED,
        )
    )
    return [
        Paragraph("Share of time within RPO", H2),
        drawing,
        Paragraph(
            "Each bar counts the devices whose achieved share over the period falls in the bucket; "
            "'no backup' counts devices without any good backup in or before the period.",
            SMALL,
        ),
    ]
