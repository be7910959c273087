"""The Reports pages in a real browser (Debian's chromium, Playwright, the
live server): an auditor opens the compliance report of a seeded fleet,
reads totals, chart, device rows and controls, and downloads the PDF (its
digest kept); an admin creates a schedule and finds it listed."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from console.accounts.roles import set_role
from console.reports.models import GeneratedReport
from console.reports.schedules import ReportSchedule
from tests.console import report_fleet
from tests.console.conftest import enroll
from tests.console.test_browser import open_browser  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _sign_in(page, base, name, password):
    page.goto(base + "/login/")
    page.fill("#id_username", name)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def test_auditor_reads_the_report_and_downloads_the_pdf(
    live_server,
    open_browser,  # noqa: F811 (the fixture imported above)
    django_user_model,
    settings,
    small_fleet,  # noqa: F811
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from playwright.sync_api import expect

    seeded = report_fleet.build(enroll, small_fleet.token_plaintext, 4, days=7)
    auditor = django_user_model.objects.create_user("audrey", password="Browser-pass-1")
    set_role(auditor, "Auditor")
    admin = django_user_model.objects.create_user("alice", password="Browser-pass-1")
    set_role(admin, "Admin")

    page, base = open_browser(), live_server.url
    _sign_in(page, base, "audrey", "Browser-pass-1")
    page.get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", name="Reports", exact=True)).to_be_visible()
    page.fill("#id_start", seeded.start.isoformat())
    page.fill("#id_end", seeded.end.isoformat())
    page.get_by_role("button", name="Show report").click()

    expect(page.locator("#report-summary")).to_contain_text("Not met: 1 device(s) never backed up")
    expect(page.locator("#report-totals .stat").first).to_contain_text("7")  # 3 + 4 devices
    expect(page.locator("#report-chart .bar")).to_have_count(6)
    rows = page.locator("#report-devices tbody tr")
    expect(rows).to_have_count(7)
    expect(rows.first).to_contain_text("never backed up")  # problems first
    expect(page.locator("#report-devices")).to_contain_text('<b>evil</b> & "x"')  # text, not markup
    expect(page.locator("#report-controls")).to_contain_text("A.8.13")

    with page.expect_download() as info:
        page.get_by_role("link", name="Download PDF").click()
    data = Path(info.value.path()).read_bytes()
    assert data.startswith(b"%PDF-")
    kept = GeneratedReport.objects.get(format="pdf")
    assert kept.sha256 == hashlib.sha256(data).hexdigest() and kept.generated_by_name == "audrey"

    # the auditor reads schedules but cannot create one
    page.get_by_role("link", name="Schedules").click()
    expect(page.get_by_role("heading", name="New schedule")).to_have_count(0)

    context = page.context
    context.clear_cookies()
    _sign_in(page, base, "alice", "Browser-pass-1")
    page.goto(base + "/reports/schedules/")
    page.fill("#id_name", "Monthly, whole fleet")
    page.select_option("#id_frequency", "monthly")
    page.fill("#id_recipients", "auditor@example.com")
    page.check("#id_enabled")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator("#schedules")).to_contain_text("Monthly, whole fleet")
    expect(page).to_have_url(re.compile(r"/reports/schedules/$"))
    assert ReportSchedule.objects.get().recipients == ["auditor@example.com"]
