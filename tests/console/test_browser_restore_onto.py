"""Restore onto another device and replace a device in a real browser
(Debian's chromium, Playwright, live server, moto S3): a revoked laptop's
folder is sent to another device from its page, then that device takes it
over (issue 11)."""

from __future__ import annotations

import pytest

from console.accounts.roles import set_role
from console.audit.services import SYSTEM
from console.fleet import services as fleet
from console.jobs.models import Command, Snapshot
from tests.console.test_browser import open_browser  # noqa: F401  (fixture)
from tests.console.test_restore_access import pair, s3_settings  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_restores_onto_another_device_then_replaces_it(
    live_server,
    open_browser,  # noqa: F811
    django_user_model,
    pair,  # noqa: F811
):
    from playwright.sync_api import expect

    (old, _), (new, _) = pair
    Snapshot.objects.create(device=old, snapshot_id="d" * 64, paths=["/C/Users/ana/Documents"])
    fleet.revoke_device(SYSTEM, old, "stolen")
    admin = django_user_model.objects.create_user("alice", password="Browser-pass-1")
    set_role(admin, "Admin")

    page, base = open_browser(), live_server.url
    page.on("dialog", lambda d: d.accept())
    page.goto(base + "/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "Browser-pass-1")
    page.click("button[type=submit]")

    page.goto(f"{base}/devices/{old.pk}/")
    page.get_by_test_id("restore").click()
    page.select_option("#id_target_device", str(new.pk))
    page.fill("#id_paths", "/C/Users/ana/Documents/Projects")
    page.click("form.card button[type=submit]")
    expect(page).to_have_url(f"{base}/devices/{new.pk}/")
    expect(page.locator("body")).to_contain_text("onto new-pc requested")
    cmd = Command.objects.get(device=new, kind="restore")
    assert cmd.payload["mapping"]["entries"] == [
        ["/C/Users/ana/Documents/Projects", "{Documents}", "/Projects"]
    ]

    page.goto(f"{base}/devices/{old.pk}/")
    page.get_by_test_id("replace").click()
    page.select_option("#replacement", str(new.pk))
    page.click("form.card button[type=submit]")
    expect(page).to_have_url(f"{base}/devices/{new.pk}/")
    expect(page.locator("body")).to_contain_text("new-pc takes over old-pc")
    assert Command.objects.filter(device=new, kind="takeover").count() == 1
