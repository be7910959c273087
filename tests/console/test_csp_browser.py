"""Issue 10: the console sends a Content-Security-Policy that blocks inline
script, and every page (dashboard and API docs) still works under it in a
real browser."""

from __future__ import annotations

import re

import pytest

from console.accounts.roles import set_role
from console.audit.services import SYSTEM
from console.fleet import services as fleet
from tests.console.test_browser import open_browser  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

INJECT = """() => {
  const s = document.createElement("script");
  s.textContent = "window.__injected = 1";
  document.body.appendChild(s);
  return window.__injected === 1;
}"""


def test_pages_work_under_the_csp_and_injected_inline_script_does_not_run(
    live_server,
    open_browser,  # noqa: F811
    django_user_model,
    settings,
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from playwright.sync_api import expect

    admin = django_user_model.objects.create_user("carol", password="Browser-pass-1")
    set_role(admin, "Admin")
    group = fleet.create_group(SYSTEM, "Finance")
    _, secret = fleet.create_enrollment_token(SYSTEM, "t", group, max_uses=10)
    device = fleet.enroll_device(secret, hostname="fin-win-01", os="windows")

    page, base = open_browser(), live_server.url
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    response = page.goto(base + "/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.fill("#id_username", "carol")
    page.fill("#id_password", "Browser-pass-1")
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    for path in ("/", "/devices/", f"/devices/{device.pk}/", "/policies/new/", "/audit/"):
        page.goto(base + path)
        expect(page.locator("main, body").first).to_be_visible()
    # the policy form's script still runs: the schedule mode toggles fields
    page.goto(base + "/policies/new/")
    page.check("input[name=schedule_mode][value=times]")
    expect(page.locator("[data-mode=times]")).to_be_visible()
    expect(page.locator("[data-mode=interval]")).to_be_hidden()
    # the API docs (Swagger UI) render the operations under the same policy
    page.goto(base + "/api/docs/")
    expect(page.locator(".opblock-tag").first).to_be_visible()
    expect(page.get_by_text(re.compile("Cairn console API"))).to_be_visible()
    assert violations == []

    # an inline script that got into a page anyhow does not run
    page.goto(base + "/devices/")
    assert page.evaluate(INJECT) is False
    assert any("Content Security Policy" in v for v in violations)
