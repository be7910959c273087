"""Page furniture of the PDF report: the footer on every page (when, from what
data, digest, "page x of y")."""

from __future__ import annotations

from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas as pdf_canvas

from console.reports.pdf_text import MARGIN, MUTED, RULE, clean_text, fit_width, fmt_when


def footer_text(report) -> tuple[str, str]:
    return (
        f"Generated {fmt_when(report.generated_at)} from {clean_text(report.source, 200)}",
        f"Report digest (SHA-256 of its data): {clean_text(report.digest, 64)}",
    )


class NumberedCanvas(pdf_canvas.Canvas):
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
        self.drawString(MARGIN, y + 9, fit_width(self._footer[0], "Helvetica", 7, room))
        self.drawString(MARGIN, y, fit_width(self._footer[1], "Helvetica", 7, room))
        self.drawRightString(width - MARGIN, y + 9, page)
