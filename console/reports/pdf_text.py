"""Shared by the PDF report's parts: page geometry, colours, paragraph styles,
and the formatting that makes untrusted text printable and bounded before it
reaches the document (escaped for reportlab's markup where it becomes a
Paragraph)."""

from __future__ import annotations

from datetime import date, datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (
    Paragraph,
)

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


def clean_text(value, limit: int = MAX_TEXT) -> str:
    """Untrusted text made printable and bounded (not yet escaped)."""
    text = "" if value is None else str(value)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def para(value, style=CELL, limit: int = MAX_TEXT) -> Paragraph:
    return Paragraph(escape(clean_text(value, limit)), style)


def fmt_when(value, zone: bool = True) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") + (
            " UTC" if zone and value.utcoffset() is not None else ""
        )
    if isinstance(value, date):
        return value.isoformat()
    return clean_text(value)


def fmt_share(value) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


def fmt_bytes(value) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def fmt_duration(seconds) -> str:
    if seconds is None:
        return "not measured"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_rate(bps) -> str:
    return "—" if bps is None else fmt_bytes(bps) + "/s"


def fmt_value(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)


def fit_width(text: str, font: str, size: float, width: float) -> str:
    """``text`` cut (with an ellipsis) to ``width`` points."""
    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


# --- results ------------------------------------------------------------------


def passed(result) -> bool:
    text = str(result or "").strip().lower()
    return text in PASSED or text.startswith(("met:", "met ", "ok:", "ok "))


PASSED = ("pass", "passed", "met", "ok", "good", "succeeded", "protected")
NOT_RUN = ("", "none", "—", "not run", "unknown")
BAD_WORDS = ("fail", "damage", "never", "missing", "not seen", "unprotected", "error")


def result_colour(result) -> colors.Color:
    text = str(result or "").strip().lower()
    if passed(text):
        return GOOD
    if text in NOT_RUN:
        return MUTED
    if any(word in text for word in BAD_WORDS):
        return BAD
    return WARN


def control_colour(result) -> colors.Color:
    text = str(result or "").strip().lower()
    if passed(text):
        return GOOD
    return BAD if text.startswith(("fail", "not met")) else WARN
