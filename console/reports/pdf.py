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
"""

from __future__ import annotations

import io
from datetime import date, datetime
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas as pdf_canvas
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    LongTable,
    NextPageTemplate,
    PageBreak,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.doctemplate import BaseDocTemplate, PageTemplate
from reportlab.platypus.frames import Frame

PAGE = landscape(A4)
MARGIN = 14 * mm
FOOTER_HEIGHT = 12 * mm
MAX_TEXT = 80  # characters of any one untrusted field shown in a cell

INK = colors.HexColor("#1f2933")
MUTED = colors.HexColor("#616e7c")
RULE = colors.HexColor("#cbd2d9")
HEAD_BG = colors.HexColor("#243b53")
ZEBRA = colors.HexColor("#f5f7fa")
GOOD = colors.HexColor("#2f8132")
WARN = colors.HexColor("#b7791f")
BAD = colors.HexColor("#c53030")

# Achieved-share buckets for the chart, best first: (label, lower bound inclusive).
BUCKETS = (("100%", 1.0), ("99–100%", 0.99), ("95–99%", 0.95), ("80–95%", 0.80), ("< 80%", 0.0))


def render_pdf(report) -> bytes:
    """The report as PDF bytes (deterministic apart from reportlab's document id)."""
    buffer = io.BytesIO()
    footer = _footer_text(report)
    doc = BaseDocTemplate(
        buffer,
        pagesize=PAGE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + FOOTER_HEIGHT,
        title=f"Backup compliance report {_d(report.start)} – {_d(report.end)}",
        author="Cairn console",
        subject=f"Scope: {_clean(report.scope_label)}; digest {report.digest}",
        creator="Cairn console (reportlab)",
    )
    frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body")
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame])])
    story = [NextPageTemplate("page")]
    story += _cover(report)
    story += [PageBreak()]
    story += _controls_section(report)
    story += [PageBreak()]
    story += _recovery_table(report)
    story += [PageBreak()]
    story += _protection_table(report)
    doc.build(story, canvasmaker=lambda *a, **kw: _NumberedCanvas(*a, footer=footer, **kw))
    return buffer.getvalue()


# --- text --------------------------------------------------------------------

_styles = getSampleStyleSheet()
TITLE = ParagraphStyle(
    "title", parent=_styles["Title"], alignment=TA_LEFT, fontSize=22, leading=26, textColor=INK
)
H2 = ParagraphStyle("h2", parent=_styles["Heading2"], textColor=INK, spaceBefore=8, spaceAfter=4)
BODY = ParagraphStyle("body", parent=_styles["BodyText"], fontSize=9.5, leading=12.5, textColor=INK)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=8, leading=10, textColor=MUTED)
CELL = ParagraphStyle("cell", parent=BODY, fontSize=7.5, leading=9)
CELL_HEAD = ParagraphStyle(
    "cellhead", parent=CELL, textColor=colors.white, fontName="Helvetica-Bold"
)
VERDICT = ParagraphStyle("verdict", parent=BODY, fontSize=13, leading=17, fontName="Helvetica-Bold")


def _clean(value, limit: int = MAX_TEXT) -> str:
    """Untrusted text made printable and bounded (not yet escaped)."""
    text = "" if value is None else str(value)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _p(value, style=CELL, limit: int = MAX_TEXT) -> Paragraph:
    return Paragraph(escape(_clean(value, limit)), style)


def _d(value, zone: bool = True) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") + (
            " UTC" if zone and value.utcoffset() is not None else ""
        )
    if isinstance(value, date):
        return value.isoformat()
    return _clean(value)


def _share(value) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


def _bytes(value) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _duration(seconds) -> str:
    if seconds is None:
        return "not measured"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _rate(bps) -> str:
    return "—" if bps is None else _bytes(bps) + "/s"


def _text(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)


# --- page furniture -----------------------------------------------------------


def _footer_text(report) -> tuple[str, str]:
    return (
        f"Generated {_d(report.generated_at)} from {_clean(report.source, 200)}",
        f"Report digest (SHA-256 of its data): {_clean(report.digest, 64)}",
    )


def _fit(text: str, font: str, size: float, width: float) -> str:
    """``text`` cut (with an ellipsis) to ``width`` points."""
    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


class _NumberedCanvas(pdf_canvas.Canvas):
    """Defers each page until the end so the footer can say "page x of y"."""

    def __init__(self, *args, footer: tuple[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self._footer = footer
        self._pages: list[dict] = []

    def showPage(self):  # noqa: N802 (reportlab's name)
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        total = len(self._pages)
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self._draw_footer(number, total)
            super().showPage()
        super().save()

    def _draw_footer(self, number: int, total: int) -> None:
        width, _ = self._pagesize
        y = MARGIN
        self.setStrokeColor(RULE)
        self.setLineWidth(0.5)
        self.line(MARGIN, y + 18, width - MARGIN, y + 18)
        self.setFont("Helvetica", 7)
        self.setFillColor(MUTED)
        page = f"Page {number} of {total}"
        room = width - 2 * MARGIN - stringWidth(page, "Helvetica", 7) - 12
        self.drawString(MARGIN, y + 9, _fit(self._footer[0], "Helvetica", 7, room))
        self.drawString(MARGIN, y, _fit(self._footer[1], "Helvetica", 7, room))
        self.drawRightString(width - MARGIN, y + 9, page)


# --- sections ----------------------------------------------------------------


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


def _cover(report) -> list:
    totals = report.totals
    sentence, colour = verdict(report)
    style = ParagraphStyle("v", parent=VERDICT, textColor=colour)
    rows = [
        ("Devices in scope", f"{totals.devices}"),
        ("Time within RPO (fleet)", _share(totals.within_rpo_share)),
        ("Never backed up", f"{totals.never_backed_up}"),
        ("Not seen in the period", f"{totals.not_seen}"),
        ("Failed backups", f"{totals.failures}"),
        ("Data added", _bytes(totals.bytes_added)),
        ("Repository size (end of period)", _bytes(totals.repository_bytes)),
        ("Devices verified", f"{totals.verified}"),
        ("Devices with a test restore", f"{totals.test_restored}"),
    ]
    table = Table(
        [[_p(k, BODY), Paragraph(f"<b>{escape(v)}</b>", BODY)] for k, v in rows],
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
            [_p("Scope", SMALL), _p(report.scope_label, BODY, 120)],
            [
                _p("Period", SMALL),
                _p(f"{_d(report.start)} to {_d(report.end)} (inclusive, UTC days)", BODY),
            ],
            [_p("Generated", SMALL), _p(_d(report.generated_at), BODY)],
            [_p("Data", SMALL), _p(report.source, BODY, 200)],
            [_p("Digest", SMALL), _p(f"sha256:{report.digest}", BODY, 80)],
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
        _side_by_side([Paragraph("Fleet totals", H2), table], _chart_section(report)),
        Spacer(1, 3 * mm),
        Paragraph(
            "The share within RPO is the time each device spent with a good backup younger than its policy's "
            "RPO, over the period, from the job history (not from today's state). The digest identifies the "
            "report's data: a copy handed to an auditor can be checked against the console's record.",
            SMALL,
        ),
    ]


def _side_by_side(left: list, right: list) -> Table:
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


def _chart_section(report) -> list:
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


def passed(result) -> bool:
    text = str(result or "").strip().lower()
    return text in PASSED or text.startswith(("met:", "met ", "ok:", "ok "))


PASSED = ("pass", "passed", "met", "ok", "good", "succeeded", "protected")
NOT_RUN = ("", "none", "—", "not run", "unknown")
BAD_WORDS = ("fail", "damage", "never", "missing", "not seen", "unprotected", "error")


def _result_colour(result) -> colors.Color:
    text = str(result or "").strip().lower()
    if passed(text):
        return GOOD
    if text in NOT_RUN:
        return MUTED
    if any(word in text for word in BAD_WORDS):
        return BAD
    return WARN


def _result(result) -> Paragraph:
    style = ParagraphStyle(
        "r", parent=CELL, textColor=_result_colour(result), fontName="Helvetica-Bold"
    )
    return _p(_text(result), style)


def _control_colour(result) -> colors.Color:
    text = str(result or "").strip().lower()
    if passed(text):
        return GOOD
    return BAD if text.startswith(("fail", "not met")) else WARN


def _controls_section(report) -> list:
    header = [Paragraph(h, CELL_HEAD) for h in ("Control", "Requirement", "Evidenced by", "Result")]
    rows = [header]
    for c in report.controls:
        result = ParagraphStyle("cr", parent=CELL, textColor=_control_colour(c.result))
        rows.append(
            [
                Paragraph(
                    f"<b>{escape(_clean(c.framework))}</b><br/>{escape(_clean(c.control))}", CELL
                ),
                _p(c.title, CELL, 240),
                _p(_text(c.evidenced_by), CELL, 400),
                _p(c.result, result, 600),
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


CELL_FONT, CELL_BOLD, CELL_SIZE = "Helvetica", "Helvetica-Bold", 7.5
LEADING = CELL_SIZE * 1.2
PAD_X, PAD_Y = 3, 2.5
MAX_LINES = 6  # of one cell; a longer text ends in an ellipsis (the CSV holds it whole)


class _Grid(Flowable):
    """Device rows drawn straight onto the canvas: one text object a page,
    the header repeated on every page, rows never cut across pages, a cell
    wrapped onto more lines when its text needs them (damage names files).
    reportlab's Table measures and draws each cell through generic machinery
    (and re-measures the rest of a long table at every page break); at
    10,000 devices and ~19 cells each that is the difference between about
    25 seconds and a few. Texts are drawn as text, never parsed as markup."""

    def __init__(self, head, widths, rows, colours, bold_cols, heights=None, head_lines=None):
        super().__init__()
        self.head, self.widths = head, widths
        self.rows, self.colours, self.bold = rows, colours, set(bold_cols)
        self.head_lines = head_lines or [
            simpleSplit(h, CELL_BOLD, CELL_SIZE, w - 2 * PAD_X)
            for h, w in zip(head, widths, strict=True)
        ]
        self.head_height = max(len(x) for x in self.head_lines) * LEADING + 2 * PAD_Y
        self.heights = heights or [max(len(c) for c in row) * LEADING + 2 * PAD_Y for row in rows]

    def wrap(self, avail_width, avail_height):
        self.width = sum(self.widths)
        self.height = self.head_height + sum(self.heights)
        return self.width, self.height

    def split(self, avail_width, avail_height):
        room, n = avail_height - self.head_height, 0
        while n < len(self.rows) and room >= self.heights[n]:
            room -= self.heights[n]
            n += 1
        if n == 0 or n == len(self.rows):
            return [] if n == 0 else [self]
        parts = []
        for rows, colours, heights in (
            (self.rows[:n], self.colours[:n], self.heights[:n]),
            (self.rows[n:], self.colours[n:], self.heights[n:]),
        ):
            parts.append(
                _Grid(self.head, self.widths, rows, colours, self.bold, heights, self.head_lines)
            )
        return parts

    def draw(self):
        c = self.canv
        y = self.height
        c.setFillColor(HEAD_BG)
        c.rect(0, y - self.head_height, self.width, self.head_height, stroke=0, fill=1)
        c.setStrokeColor(RULE)
        c.setLineWidth(0.25)
        top = y - self.head_height
        for i, h in enumerate(self.heights):
            if i % 2:
                c.setFillColor(ZEBRA)
                c.rect(0, top - h, self.width, h, stroke=0, fill=1)
            top -= h
            c.line(0, top, self.width, top)
        text = c.beginText()
        text.setFont(CELL_BOLD, CELL_SIZE)
        text.setFillColor(colors.white)
        self._cells(text, y, self.head_lines, self.head_height, bold=True)
        y -= self.head_height
        current = (None, None)
        for row, colours, h in zip(self.rows, self.colours, self.heights, strict=True):
            x = 0
            for col, (lines, width) in enumerate(zip(row, self.widths, strict=True)):
                style = (CELL_BOLD if col in self.bold else CELL_FONT, colours[col])
                if style != current:
                    text.setFont(style[0], CELL_SIZE)
                    text.setFillColor(style[1])
                    current = style
                for k, line in enumerate(lines):
                    text.setTextOrigin(x + PAD_X, y - PAD_Y - CELL_SIZE - k * LEADING)
                    text.textOut(line)
                x += width
            y -= h
        c.drawText(text)

    def _cells(self, text, y, cells, height, bold):
        x = 0
        for lines, width in zip(cells, self.widths, strict=True):
            for k, line in enumerate(lines):
                text.setTextOrigin(x + PAD_X, y - PAD_Y - CELL_SIZE - k * LEADING)
                text.textOut(line)
            x += width


def _lines(text: str, font: str, width: float) -> list[str]:
    """``text`` as the lines it takes in a column (at most MAX_LINES)."""
    if len(text) * CELL_SIZE <= width or stringWidth(text, font, CELL_SIZE) <= width:
        return [text]  # (no Helvetica glyph is wider than its em)
    lines = simpleSplit(text, font, CELL_SIZE, width) or [""]
    lines = [_fit(line, font, CELL_SIZE, width) for line in lines]  # a word wider than the column
    if len(lines) > MAX_LINES:
        lines = lines[: MAX_LINES - 1] + [_fit(lines[MAX_LINES - 1] + "…", font, CELL_SIZE, width)]
    return lines


class _Rows:
    """Rows of a device table: each cell's text made printable, bounded and
    split into the lines it needs; result columns bold and coloured by what
    they say."""

    def __init__(self, head, widths_mm, results=()):
        self.head = list(head)
        self.widths = [w * mm for w in widths_mm]
        self.results = set(results)
        self.rows: list[list[list[str]]] = []
        self.colours: list[list] = []

    def add(self, values) -> None:
        row, colours = [], []
        for col, value in enumerate(values):
            bold = col in self.results
            font = CELL_BOLD if bold else CELL_FONT
            row.append(_lines(_clean(value, 400), font, self.widths[col] - 2 * PAD_X))
            colours.append(_result_colour(value) if bold else INK)
        self.rows.append(row)
        self.colours.append(colours)

    def tables(self) -> list:
        rows = self.rows or [[["—"]] + [[""] for _ in self.head[1:]]]
        colours = self.colours or [[MUTED] * len(self.head)]
        return [_Grid(self.head, self.widths, rows, colours, self.results)]


def _recovery_table(report) -> list:
    rows = _Rows(RECOVERY_HEAD, [34, 30, 20, 16, 17, 27, 27, 17, 18, 20, 21, 22], results=(2,))
    for d in report.devices:
        rows.add(
            [
                d.hostname,
                _text(d.groups),
                d.status,
                "—" if d.rpo_hours is None else f"{float(d.rpo_hours):g} h",
                _share(d.achieved_share),
                _d(d.last_good_backup, zone=False),
                _d(d.last_seen, zone=False),
                f"{d.successes} / {d.failures}",
                _bytes(d.bytes_added),
                _bytes(d.repository_bytes),
                _duration(d.rto_seconds),
                _rate(d.restore_throughput_bps),
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
    values = {_text(getattr(d, name)) for d in report.devices}
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
    rows = _Rows(
        [h for h, _, _, _ in columns],
        [w or flexible for _, w, _, _ in columns],
        results=[i for i, n in enumerate(names) if n.endswith("_result")],
    )
    for d in report.devices:
        rows.add(
            [
                _d(getattr(d, n), zone=False) if n.startswith("last_") else _text(getattr(d, n))
                for n in names
            ]
        )
    tables = rows.tables()
    same = [
        Paragraph(f"<b>{label} (every device):</b> {escape(_clean(shared[name], 400))}", BODY)
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
