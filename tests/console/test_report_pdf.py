"""The compliance report as PDF: rendered from a real report of a seeded
fleet, turned into PNG pages with pdftoppm (poppler-utils) and read back
with pdftotext; pages are not blank, the text layer holds the hostnames,
the controls, the measured RTO, and every page's footer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from console.reports.compliance import Scope, build_compliance_report
from console.reports.pdf import bucket_counts, render_pdf
from tests.console import report_fleet
from tests.console.conftest import enroll

pytestmark = pytest.mark.django_db

CONTROLS = ("A.8.13", "A1.2", "A1.3", "164.308(a)(7)(ii)(A)", "164.308(a)(7)(ii)(D)")


def _need(tool):
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} missing: `make os-tools` installs poppler-utils")


def _text(pdf: Path, page: int | None = None) -> str:
    args = ["pdftotext", "-layout"]
    if page is not None:
        args += ["-f", str(page), "-l", str(page)]
    return subprocess.run([*args, str(pdf), "-"], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def rendered(tmp_path, small_fleet):
    _need("pdftoppm")
    _need("pdftotext")
    fleet = report_fleet.build(enroll, small_fleet.token_plaintext, 40)
    report = build_compliance_report(fleet.start, fleet.end, Scope.all())
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(render_pdf(report))
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    return fleet, report, pdf, pages


def test_pages_are_not_blank_and_numbered(rendered):
    _, report, pdf, pages = rendered
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert len(pages) >= 4  # cover, controls, two device tables (43 rows: more pages)
    for png in pages:
        with Image.open(png) as image:
            stddev = ImageStat.Stat(image.convert("L")).stddev[0]
        assert stddev > 8, (png.name, stddev)  # a blank page is 0
    total = len(pages)
    for number in range(1, total + 1):
        text = _text(pdf, number)
        assert f"Page {number} of {total}" in text
        assert report.digest in text  # the footer: digest on every page
        assert "Generated " in text and "device history" in text  # when, and from what data


def test_text_holds_hosts_controls_and_rto(rendered):
    fleet, report, pdf, _ = rendered
    text = _text(pdf)
    for device in fleet.devices:
        if device.pk != fleet.hostile.pk:
            assert device.hostname in text, device.hostname
    # what a PC wrote is text, never markup: the tags show literally, the bell is replaced
    assert "<b>evil</b>" in text and "\x07" not in text
    for control in CONTROLS:
        assert control in text, control
    assert "ISO/IEC 27001:2022" in text and "SOC 2" in text and "HIPAA" in text
    assert "12.5 s" in text and "76.3 MiB/s" in text  # measured RTO and restore rate
    assert "never backed up" in text
    assert "damaged: 0 objects, 1 files" in text  # the failing device's verification
    assert f"{report.start.isoformat()} to {report.end.isoformat()}" in text


def test_long_tables_repeat_their_header(rendered):
    _, report, pdf, pages = rendered
    recovery_pages = [n for n in range(1, len(pages) + 1) if "Measured RTO" in _text(pdf, n)]
    protection_pages = [
        n for n in range(1, len(pages) + 1) if "Test restore result" in _text(pdf, n)
    ]
    assert len(recovery_pages) >= 2 and len(protection_pages) >= 2  # 43 devices do not fit one page
    rows = sum(_text(pdf, n).count("rp-0") for n in recovery_pages)
    assert rows == 39  # every device once (rp-039 is the hostile name), none lost at a page break


def test_chart_buckets_follow_the_devices(rendered):
    fleet, report, _, _ = rendered
    counts = dict(bucket_counts(report))
    assert counts["no backup"] == 1  # pc-000
    assert sum(counts.values()) == len(fleet.devices)
    assert counts["100%"] == len(fleet.devices) - 2  # all but the never and the failing one


def test_an_empty_scope_is_a_document_too(tmp_path, small_fleet):
    _need("pdftotext")
    fleet = report_fleet.build(enroll, small_fleet.token_plaintext, 2, days=3)
    report = build_compliance_report(
        fleet.start, fleet.end, Scope.group(small_fleet.other_group.pk)
    )
    assert report.devices == []
    pdf = tmp_path / "empty.pdf"
    pdf.write_bytes(render_pdf(report))
    text = _text(pdf)
    assert "No devices in scope for this period." in text
    assert "group Engineering" in text and "A.8.13" in text
