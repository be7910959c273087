"""The console in a real browser: Debian's chromium driven by Playwright
against pytest-django's live server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db import connections

from console.accounts.roles import set_role
from console.audit.services import SYSTEM
from console.fleet import services as fleet
from tests.support import CHROMIUM, launch_chromium, need_service

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def open_browser(monkeypatch):
    """open_browser() -> a Playwright page. Call it after the test's own
    database setup: while Playwright's sync API runs, Django would keep the
    test's connection in a context of its own that teardown cannot close."""
    if not Path(CHROMIUM).exists():
        need_service("Debian's chromium at /usr/bin/chromium (make os-tools)")
    from playwright.sync_api import sync_playwright

    state = {}

    def open_page():
        connections.close_all()
        # only for this test: later tests' subprocesses must not inherit it
        monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        state["pw"] = sync_playwright().start()
        state["browser"] = launch_chromium(state["pw"])
        page = state["browser"].new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15000)
        return page

    yield open_page
    if "browser" in state:
        state["browser"].close()
    if "pw" in state:
        state["pw"].stop()


def test_admin_creates_fixes_assigns_a_policy_and_finds_it_audited(
    live_server, open_browser, django_user_model, settings
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from playwright.sync_api import expect

    admin = django_user_model.objects.create_user("alice", password="Browser-pass-1")
    set_role(admin, "Admin")
    finance = fleet.create_group(SYSTEM, "Finance")
    fleet.create_group(SYSTEM, "Engineering")
    _, secret = fleet.create_enrollment_token(SYSTEM, "t", finance, max_uses=10)
    fleet.enroll_device(secret, hostname="fin-win-01", os="windows")
    fleet.enroll_device(secret, hostname="fin-mac-01", os="macos")

    page, base = open_browser(), live_server.url
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login/"))
    page.fill("#id_username", "alice")
    page.fill("#id_password", "Browser-pass-1")
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    # a policy with an invalid field is refused, with the error at the field
    page.goto(base + "/policies/new/")
    page.fill("#id_name", "Laptops")
    page.fill("#id_sources_windows", "{Documents}\n{Documnets}")
    page.click("#policy-form button[type=submit]")
    error = page.locator("#field-sources_windows .field-errors")
    expect(error).to_contain_text("{Documnets} is not a known folder on windows")
    expect(page.locator(".form-errors")).to_be_visible()

    # fixed, it saves as revision 1
    page.fill("#id_sources_windows", "{Documents}\n{Desktop}")
    page.click("#policy-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("saved as revision 1")
    expect(page.get_by_role("heading", name="Laptops")).to_be_visible()

    # assigned to a group; rollout shows the two devices targeted
    page.select_option("#assign-form select[name=group]", label="Finance")
    page.fill("#assign-form input[name=precedence]", "10")
    page.click("#assign-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Laptops assigned to Finance")
    expect(page.get_by_text("0 of 2 devices acknowledged")).to_be_visible()

    # the device list filter
    page.goto(base + "/devices/")
    expect(page.locator("#device-table")).to_contain_text("fin-win-01")
    page.select_option("select[name=os]", "macos")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"os=macos"))
    expect(page.locator("#device-table")).to_contain_text("fin-mac-01")
    expect(page.locator("#device-table")).not_to_contain_text("fin-win-01")
    expect(page.locator("#device-table")).to_contain_text("Laptops")

    # the audit log has the changes, by alice, through the console
    page.goto(base + "/audit/")
    table = page.locator("#audit-table")
    expect(table).to_contain_text("policy.assign")
    expect(table).to_contain_text("policy.create")
    row = table.locator("tr", has_text="policy.assign")
    expect(row).to_contain_text("alice")
    expect(row).to_contain_text("Console")
    page.select_option("select[name=action]", "policy.")
    page.click("form.filters button[type=submit]")
    expect(table).not_to_contain_text("group.create")
