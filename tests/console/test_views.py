"""Dashboard pages: flows through the forms, and a bounded number of queries
per page whatever the size of the fleet (no N+1)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from console.audit.models import AuditEvent
from console.audit.services import SYSTEM
from console.demo.seed import seed_demo
from console.fleet import services as fleet
from console.fleet.models import Device
from console.jobs import services as jobs
from console.jobs.models import Command
from console.policies.models import Policy
from console.policies.spec import default_spec
from tests.console.conftest import enroll

pytestmark = pytest.mark.django_db

# Upper bounds of queries per page render (session and user included).
MAX_QUERIES = {"overview": 12, "devices": 12, "device": 16}


def _policy_post(**overrides):
    from console.dashboard.forms import PolicyForm

    initial = PolicyForm.initial_from("Laptops", "", default_spec())
    data = {k: v for k, v in initial.items() if v is not None and v is not False}
    data.update(overrides)
    return data


def test_policy_form_shows_field_errors_then_saves(ui, small_fleet):
    c = ui("admin")
    r = c.post(
        "/policies/new/", _policy_post(sources_windows="{Documents}\n{Documnets}", every_hours="0")
    )
    assert r.status_code == 200
    html = r.content.decode()
    assert "{Documnets} is not a known folder on windows" in html
    assert "Must be between 1 and 168." in html
    assert not Policy.objects.filter(name="Laptops").exists()
    r = c.post("/policies/new/", _policy_post(comment="first"))
    policy = Policy.objects.get(name="Laptops")
    assert r.status_code == 302 and r.url == f"/policies/{policy.pk}/"
    r = c.post(f"/policies/{policy.pk}/", {"group": small_fleet.other_group.pk, "precedence": 10})
    assert r.status_code == 302
    assert policy.assignments.get().group == small_fleet.other_group
    r = c.post(
        f"/policies/{policy.pk}/edit/", _policy_post(schedule_mode="times", times="09:00, 13:00")
    )
    assert r.status_code == 302
    policy.refresh_from_db()
    assert policy.current_revision.number == 2
    assert policy.current_revision.spec["schedule"]["times"] == ["09:00", "13:00"]
    page = c.get(f"/policies/{policy.pk}/revisions/2/").content.decode()
    assert "schedule.times" in page and "schedule.every_hours" in page
    audit = c.get("/audit/?action=policy.").content.decode()
    assert "policy.assign" in audit and "policy.update" in audit and "policy.create" in audit
    assert AuditEvent.objects.filter(action="policy.create", via="ui", actor_name="admin").exists()


def test_device_actions_from_the_ui(ui, small_fleet):
    c = ui("operator")
    device = small_fleet.devices[0]
    r = c.post(f"/devices/{device.pk}/backup/", follow=True)
    assert "Backup requested" in r.content.decode()
    jobs.record_job_result(device.pk, "k", ok=True, snapshot_id="abc123")
    r = c.post(f"/devices/{device.pk}/restore/", {"snapshot_id": "abc123", "target": "D:/restore"})
    assert r.status_code == 302
    assert device.commands.filter(kind="restore").get().payload["target"] == "D:/restore"
    r = ui("admin").post(f"/devices/{device.pk}/revoke/", follow=True)
    assert "is revoked" in r.content.decode()


def test_tokens_page_shows_the_secret_once(ui, small_fleet):
    c = ui("admin")
    r = c.post(
        "/enrollment/",
        {"name": "Sales", "group": small_fleet.group.pk, "expires_days": 3, "max_uses": 5},
    )
    html = r.content.decode()
    assert "Copy it now" in html
    secret = html.split('id="new-token">')[1].split("<")[0]
    assert secret.startswith("cet_")
    assert secret not in c.get("/enrollment/").content.decode()


def test_groups_storage_users_pages(ui, small_fleet):
    c = ui("admin")
    assert c.post("/groups/", {"name": "Sales"}).status_code == 302
    r = c.post(
        f"/groups/{small_fleet.other_group.pk}/",
        {"action": "add_devices", "hostnames": "pc-000, pc-001"},
    )
    assert r.status_code == 302 and small_fleet.other_group.devices.count() == 2
    r = c.post(
        "/storage/new/",
        {
            "name": "minio",
            "endpoint": "m:9000",
            "bucket": "cairn",
            "region": "us-east-1",
            "use_tls": "on",
            "secret_key": "SK",
            "access_key": "AK",
        },
    )
    assert r.status_code == 302
    assert "Stored encrypted" in c.get("/storage/").content.decode()
    r = c.post(
        "/users/new/", {"username": "newbie", "role": "Auditor", "password": "Strong-pass-987"}
    )
    assert r.status_code == 302


def test_live_fragments(ui, small_fleet):
    c = ui("auditor")
    assert b"Policy rollout" in c.get("/?partial=1").content
    assert b"No job is running" in c.get("/jobs/?partial=running").content


def _count(client, url):
    with CaptureQueriesContext(connection) as ctx:
        r = client.get(url)
    assert r.status_code == 200, url
    return len(ctx.captured_queries)


def test_query_counts_are_bounded_and_do_not_grow_with_the_fleet(ui):
    c = ui("admin")
    seed_demo(devices=20, days=10, out=lambda *_: None)
    device = Device.objects.filter(is_demo=True).order_by("hostname").first()
    urls = {
        "overview": "/",
        "devices": "/devices/?status=protected&sort=-last_success",
        "device": f"/devices/{device.pk}/",
    }
    small = {k: _count(c, u) for k, u in urls.items()}
    seed_demo(devices=120, days=10, out=lambda *_: None)
    large = {k: _count(c, u) for k, u in urls.items()}
    for page, bound in MAX_QUERIES.items():
        assert large[page] <= bound, (page, large[page])
        assert large[page] == small[page], (page, small[page], large[page])


def test_device_list_filters_in_the_page(ui, small_fleet):
    enroll(small_fleet.token_plaintext, 1, prefix="mac", os="macos")
    c = ui("auditor")
    html = c.get("/devices/?os=macos").content.decode()
    assert "mac-000" in html and "pc-000" not in html
    html = c.get(f"/devices/?group={small_fleet.other_group.pk}").content.decode()
    assert "No device matches" in html
    fleet.set_device_groups(SYSTEM, small_fleet.devices[0], [small_fleet.other_group])
    html = c.get(f"/devices/?group={small_fleet.other_group.pk}").content.decode()
    assert "pc-000" in html and "pc-001" not in html


def test_cancel_never_redirects_off_site(ui, small_fleet):
    from console.jobs import services as jobs_services

    cmd = jobs_services.request_backup(SYSTEM, small_fleet.devices[0])
    r = ui("operator").post(f"/commands/{cmd.pk}/cancel/", {"next": "https://evil.example/"})
    assert r.status_code == 302 and r.url == "/commands/"


def test_csv_reports_follow_the_page_filters(ui, small_fleet):
    import csv
    import io

    jobs.record_job_result(small_fleet.devices[0].pk, "k", ok=True, snapshot_id="s")
    r = ui("auditor").get("/devices/export.csv?status=protected")
    assert r["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert rows[0][:5] == ["hostname", "os", "os_version", "user", "status"]
    assert [row[0] for row in rows[1:]] == ["pc-000"] and rows[1][4] == "protected"
    r = ui("auditor").get("/audit/export.csv?action=policy.")
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert {row[2] for row in rows[1:]} == {"policy.create", "policy.assign"}
    assert ui("operator").get("/audit/export.csv").status_code == 403


def test_bulk_actions_on_ticked_devices(ui, small_fleet):
    ids = [str(d.pk) for d in small_fleet.devices[:2]]
    r = ui("operator").post(
        "/devices/bulk/", {"action": "backup", "ids": ids, "next": "/devices/?os=windows"}
    )
    assert r.status_code == 302 and r.url == "/devices/?os=windows"
    assert sorted(c.device.hostname for c in Command.objects.filter(kind="backup")) == [
        "pc-000",
        "pc-001",
    ]
    assert (
        ui("operator").post("/devices/bulk/", {"action": "add_to_group", "ids": ids}).status_code
        == 403
    )
    assert ui("auditor").post("/devices/bulk/", {"action": "backup", "ids": ids}).status_code == 403
    r = ui("admin").post(
        "/devices/bulk/",
        {"action": "add_to_group", "ids": ids, "group": small_fleet.other_group.pk},
    )
    assert small_fleet.other_group.devices.count() == 2
    assert "Back up now" in ui("operator").get("/devices/").content.decode()
    assert 'id="bulk-form"' not in ui("auditor").get("/devices/").content.decode()


def test_schedule_errors_show_at_the_visible_field(ui, small_fleet):
    r = ui("admin").post("/policies/new/", _policy_post(schedule_mode="times", times=""))
    form = r.context["form"]
    assert "times" in form.errors and "every_hours" not in form.errors


def test_a_filter_value_the_list_refuses_is_said_on_the_page(ui, small_fleet):
    c = ui("auditor")
    html = c.get("/commands/?state=bogus&kind=backup").content.decode()
    assert "Filter not applied: state: Select a valid choice." in html
    html = c.get("/devices/?status=nope&os=macos").content.decode()
    assert "Filter not applied: status:" in html
    assert "pc-000" not in html  # the valid filter (os) still applies: no macOS device
    html = c.get("/audit/?since=yesterday").content.decode()
    assert "Filter not applied: since:" in html
    # A report never leaves a filter out silently.
    r = c.get("/devices/export.csv?os=beos")
    assert r.status_code == 400 and b"os" in r.content
    assert c.get("/audit/export.csv?via=fax").status_code == 400
    assert "Filter not applied" not in c.get("/devices/?os=windows").content.decode()


def test_a_token_lives_for_hours_on_both_doors(ui, api, small_fleet):
    from console.fleet.models import EnrollmentToken

    ui("admin").post("/enrollment/", {"name": "ui", "expires_in_hours": 36, "max_uses": 1})
    api("admin").post(
        "/api/v1/enrollment-tokens/", {"name": "api", "expires_in_hours": 36}, format="json"
    )
    # A page rendered before the unit became hours still posts days.
    ui("admin").post("/enrollment/", {"name": "old", "expires_days": 2, "max_uses": 1})
    tokens = {t.name: t for t in EnrollmentToken.objects.all()}
    for name, hours in (("ui", 36), ("api", 36), ("old", 48)):
        t = tokens[name]
        assert abs((t.expires_at - t.created_at).total_seconds() - hours * 3600) < 60, name
