"""The snapshot browser in a real browser (Debian's chromium, Playwright,
pytest-django's live server): a revoked device's real snapshot (moto S3) is
opened from its device page, walked folder by folder, a file downloaded and
compared byte for byte, two snapshots compared, and a file found by search."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from agent.engine.backup import run_backup
from console.accounts.roles import set_role
from console.audit.services import SYSTEM
from console.fleet import services as fleet
from console.jobs.models import Snapshot
from tests.console.test_browser import open_browser  # noqa: F401  (fixture)
from tests.console.test_restore_browse import _device, _repo, s3_settings  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_browses_a_revoked_device_and_downloads_a_file(
    live_server,
    open_browser,  # noqa: F811
    django_user_model,
    s3_settings,  # noqa: F811
    tmp_path,
):
    s3_settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from playwright.sync_api import expect

    admin = django_user_model.objects.create_user("alice", password="Browser-pass-1")
    set_role(admin, "Admin")
    dev = _device("stolen-laptop")
    src = tmp_path / "Users" / "ana"
    (src / "Documents").mkdir(parents=True)
    ledger = os.urandom(700_000)
    (src / "Documents" / "ledger.xlsx").write_bytes(ledger)
    (src / "Documents" / "old.txt").write_bytes(b"old\n")
    first = run_backup(_repo(dev), [str(src)], hostname=dev.hostname).snapshot_id
    (src / "Documents" / "old.txt").unlink()
    (src / "Documents" / "plan.md").write_bytes(b"# plan\n")
    second = run_backup(_repo(dev), [str(src)], hostname=dev.hostname).snapshot_id
    Snapshot.objects.create(device=dev, snapshot_id=first, paths=[str(src)])
    Snapshot.objects.create(device=dev, snapshot_id=second, paths=[str(src)])
    fleet.revoke_device(SYSTEM, dev, "stolen")

    page, base = open_browser(), live_server.url
    page.goto(base + "/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "Browser-pass-1")
    page.click("button[type=submit]")
    page.goto(f"{base}/devices/{dev.pk}/")
    page.get_by_test_id("snapshot-link").filter(has_text=second[:12]).click()
    expect(page.get_by_test_id("snapshot-id")).to_have_text(second[:12])
    # walk down to the folder, one click per level
    for part in [p for p in str(src).split("/") if p]:
        page.locator("#entries a.folder", has_text=re.compile(rf"^{re.escape(part)}/$")).click()
    page.locator("#entries a.folder", has_text="Documents/").click()
    row = page.locator("#entries tr", has_text="ledger.xlsx")
    expect(row).to_contain_text("683.6 KB")
    with page.expect_download() as info:
        row.get_by_test_id("download").click()
    download = info.value
    assert download.suggested_filename == "ledger.xlsx"
    assert Path(download.path()).read_bytes() == ledger
    # compare with the first snapshot
    page.select_option("select[name=with]", first)
    page.click("form[action*=compare] button[type=submit]")
    expect(page.locator("#removed")).to_contain_text("plan.md")
    expect(page.locator("#added")).to_contain_text("old.txt")
    # search
    page.goto(f"{base}/files/search/")
    page.fill("input[name=q]", "*.xlsx")
    page.click("#search button[type=submit]")
    expect(page.locator("#versions")).to_contain_text(f"{src}/Documents/ledger.xlsx")
