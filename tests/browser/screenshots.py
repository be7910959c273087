"""`make screenshots`: PNGs of the console's main pages under var/screenshots/.

Seeds a small demo fleet into a throw-away var directory (SQLite), starts the
console on a free port, signs in with Debian's chromium through Playwright
and saves each page at 1280 px wide (the Reports pages with a history
filled for the last 30 closed days, a schedule and the report it sent),
a device with an open alert (device-alert.png, after one alert evaluation
pass), the revoked laptop's "Restore onto another device" form
(restore-onto.png) and "Replace device" page (replace.png),
the first page of the compliance PDF (report-pdf-page1.png, by pdftoppm),
plus the overview and device list at tablet width (820 px).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.support import CHROMIUM, launch_chromium

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "screenshots"
USER, PASSWORD = "admin", "screenshots-Admin-1"

SETUP = f"""
from django.contrib.auth import get_user_model
from console.accounts.roles import set_role
from console.audit.services import Actor
from console.fleet import services as fleet
from console.fleet.models import Device, DeviceGroup
from console.jobs import services as jobs
User = get_user_model()
u = User.objects.create_user("{USER}", password="{PASSWORD}")
set_role(u, "Admin")
actor = Actor(user=u, address="192.0.2.10", via="ui")
fleet.create_enrollment_token(actor, "Finance laptops rollout", DeviceGroup.objects.get(name="Finance"), max_uses=50)
d = Device.objects.filter(failing=True).first() or Device.objects.first()
jobs.request_backup(actor, d)
# reports: the daily history of the last 30 closed days, a schedule and the report it sent
from datetime import timedelta
from console.reports import history, scheduling
end = history.last_closed_day()
history.fill_days(end - timedelta(days=29), end)
scheduling.create_schedule(actor, scheduling.ScheduleInput(
    "Monthly compliance, whole fleet", "monthly", recipients=("auditor@example.com", "ciso@example.com")))
scheduling.create_schedule(actor, scheduling.ScheduleInput(
    "Weekly, Finance", "weekly", scope_kind="group", group=DeviceGroup.objects.get(name="Finance"),
    recipients=("finance-it@example.com",)))
scheduling.run_due_schedules()
# alerts: no hold-down, one real evaluation pass over the demo fleet
from console.alerts import evaluation, services as alert_services
from console.alerts.models import Alert
alert_services.save_settings(actor, 0, 0)
evaluation.evaluate()
alerted = Alert.objects.filter(state="firing", severity="critical").order_by("device__hostname").first()
if alerted is None:
    raise SystemExit("no alert fired on the demo fleet")
print(end - timedelta(days=29), end)
print(d.pk)
print(alerted.device_id)
"""


def _wait(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"console did not answer at {url}")


def _pdf_first_page(page, url: str) -> None:
    """The compliance PDF as the console hands it out, and its first page as
    PNG (pdftoppm from poppler-utils, `make os-tools`)."""
    answer = page.request.get(url + "&format=pdf")
    if not answer.ok:
        raise SystemExit(f"compliance PDF: HTTP {answer.status}")
    pdf = OUT / "report.pdf"
    pdf.write_bytes(answer.body())
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "110",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(pdf),
            str(OUT / "report-pdf-page1"),
        ],
        check=True,
    )


# restore without the device (issue 11): a revoked laptop with two real
# snapshots in the embedded storage, for the browser, compare and search pages
RESTORE_SETUP = """
import os, pathlib, tempfile
from agent.engine.backup import run_backup
from agent.engine.repository import Repository
from console.audit.services import SYSTEM
from console.core.keys import org_key
from console.fleet import services as fleet
from console.fleet.models import DeviceGroup
from console.jobs.models import Snapshot
from console.storage import targets
_, token = fleet.create_enrollment_token(SYSTEM, "r", DeviceGroup.objects.get(name="Finance"), max_uses=1)
dev = fleet.enroll_device(token, hostname="fin-lt-stolen", os="linux")
targets.bootstrap_repository(targets.target(), str(dev.pk), os.urandom(32))
src = pathlib.Path(tempfile.mkdtemp()) / "home" / "ana"
for folder, names in {"Documents": ["budget-2026.xlsx", "board-minutes.docx", "contract.pdf"],
                      "Documents/Taxes": ["2024.pdf", "2025.pdf"], "Pictures": ["team.jpg"]}.items():
    (src / folder).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (src / folder / name).write_bytes(os.urandom(20000 * (i + 1)))
def back_up():
    repo = Repository.open(targets.admin_store(targets.target(), str(dev.pk)), key=org_key())
    sid = run_backup(repo, [str(src)], hostname=dev.hostname).snapshot_id
    Snapshot.objects.create(device=dev, snapshot_id=sid, paths=[str(src)])
    return sid
first = back_up()
(src / "Documents" / "notes.txt").write_bytes(b"Friday notes\\n")
(src / "Documents" / "contract.pdf").unlink()
second = back_up()
fleet.revoke_device(SYSTEM, dev, "stolen")
print(dev.pk, first, second, src)
"""


def main() -> int:
    if not Path(CHROMIUM).exists():
        print("chromium is missing (apt-get install chromium): no screenshots", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    from tests.support import free_port

    var = Path(tempfile.mkdtemp(prefix="cairn-shots-"))
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({"CAIRN_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "console.settings"})
    for sub in ("celery/queue", "celery/processed", "celery/results"):
        (var / sub).mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "manage.py"]
    run = {"cwd": ROOT, "env": env, "check": True}
    subprocess.run([*py, "migrate", "-v0"], **run)
    subprocess.run([*py, "seed_demo", "--devices", "160", "--days", "60"], **run)
    lines = (
        subprocess.run([*py, "shell", "-c", SETUP], capture_output=True, text=True, **run)
        .stdout.strip()
        .splitlines()
    )
    device_id, alerted_id = lines[-2], lines[-1]
    restore = subprocess.run(
        [*py, "shell", "-c", RESTORE_SETUP], capture_output=True, text=True, cwd=ROOT, env=env
    )
    if restore.returncode:
        raise SystemExit(f"restore screenshots setup failed:\n{restore.stderr}")
    lost, lost_first, lost_second, lost_src = restore.stdout.split()[-4:]
    report_from, report_to = lines[-3].split()
    port = free_port()
    server = subprocess.Popen(
        [*py, "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    pages = [
        ("overview", "/"),
        ("devices", "/devices/"),
        ("devices-filtered", "/devices/?status=at_risk&os=windows"),
        ("device", f"/devices/{device_id}/"),
        ("device-alert", f"/devices/{alerted_id}/"),
        ("groups", "/groups/"),
        ("policies", "/policies/"),
        ("policy", "/policies/1/"),
        ("policy-edit", "/policies/1/edit/"),
        ("revision-diff", "/policies/1/revisions/2/"),
        ("jobs", "/jobs/"),
        ("commands", "/commands/"),
        ("enrollment", "/enrollment/"),
        ("storage", "/storage/"),
        ("audit", "/audit/"),
        ("users", "/users/"),
        ("reports", f"/reports/?start={report_from}&end={report_to}"),
        ("report-schedules", "/reports/schedules/"),
        ("reports-past", "/reports/past/"),
        ("device-revoked", f"/devices/{lost}/"),
        ("restore-browse", f"/devices/{lost}/snapshots/latest/?path={lost_src}/Documents"),
        (
            "restore-compare",
            f"/devices/{lost}/snapshots/{lost_first}/compare/?with={lost_second}&path={lost_src}",
        ),
        ("restore-search", f"/files/search/?q=*.pdf&device={lost}"),
        ("restore-onto", f"/devices/{lost}/restore/"),
        ("replace", f"/devices/{lost}/replace/"),
        ("api-docs", "/api/docs/"),
    ]
    try:
        _wait(base + "/healthz")
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(base + "/login/")
            page.screenshot(path=str(OUT / "login.png"))
            page.fill("#id_username", USER)
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(base + "/")
            for name, path in pages:
                page.goto(base + path)
                if name == "api-docs":  # Swagger UI renders the schema client-side
                    page.wait_for_selector(".opblock", timeout=30000)
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
            # a policy form with a validation error
            page.goto(base + "/policies/new/")
            page.fill("#id_name", "Broken example")
            page.fill("#id_sources_windows", "{Documents}\n{Documnets}")
            page.click("#policy-form button[type=submit]")
            page.screenshot(path=str(OUT / "policy-invalid.png"), full_page=True)
            _pdf_first_page(
                page, f"{base}/reports/compliance/file/?from={report_from}&to={report_to}"
            )
            tablet = browser.new_context(viewport={"width": 820, "height": 1180})
            tablet.add_cookies(context.cookies())
            tpage = tablet.new_page()
            for name, path in [
                ("overview", "/"),
                ("devices", "/devices/"),
                ("device", f"/devices/{device_id}/"),
            ]:
                tpage.goto(base + path)
                tpage.screenshot(path=str(OUT / f"tablet-{name}.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(var, ignore_errors=True)
    print(f"screenshots in {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
