"""The device tables' fast grid: rows drawn straight onto the canvas instead of
through reportlab's Table (see DeviceGrid for why)."""

from __future__ import annotations

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (
    Flowable,
)

from console.reports.pdf_text import (
    HEAD_BG,
    INK,
    MUTED,
    RULE,
    ZEBRA,
    clean_text,
    fit_width,
    result_colour,
)

CELL_FONT, CELL_BOLD, CELL_SIZE = "Helvetica", "Helvetica-Bold", 7.5
LEADING = CELL_SIZE * 1.2
PAD_X, PAD_Y = 3, 2.5
MAX_LINES = 6  # of one cell; a longer text ends in an ellipsis (the CSV holds it whole)


class DeviceGrid(Flowable):
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
                DeviceGrid(
                    self.head, self.widths, rows, colours, self.bold, heights, self.head_lines
                )
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


def wrap_lines(text: str, font: str, width: float) -> list[str]:
    """``text`` as the lines it takes in a column (at most MAX_LINES)."""
    if len(text) * CELL_SIZE <= width or stringWidth(text, font, CELL_SIZE) <= width:
        return [text]  # (no Helvetica glyph is wider than its em)
    lines = simpleSplit(text, font, CELL_SIZE, width) or [""]
    lines = [
        fit_width(line, font, CELL_SIZE, width) for line in lines
    ]  # a word wider than the column
    if len(lines) > MAX_LINES:
        lines = lines[: MAX_LINES - 1] + [
            fit_width(lines[MAX_LINES - 1] + "…", font, CELL_SIZE, width)
        ]
    return lines


class DeviceRows:
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
            row.append(wrap_lines(clean_text(value, 400), font, self.widths[col] - 2 * PAD_X))
            colours.append(result_colour(value) if bold else INK)
        self.rows.append(row)
        self.colours.append(colours)

    def tables(self) -> list:
        rows = self.rows or [[["—"]] + [[""] for _ in self.head[1:]]]
        colours = self.colours or [[MUTED] * len(self.head)]
        return [DeviceGrid(self.head, self.widths, rows, colours, self.results)]
