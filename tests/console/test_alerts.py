"""Alerts: each rule fires on a crafted fleet and stays quiet on a healthy
one; hold-down and de-duplication (a flapping device: one alert, one
resolve); e-mail through Django's test outbox; webhooks received by a real
HTTP server on a loopback port, signature checked, retried after a 500."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.server
import json
import threading

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from console.alerts import evaluation, notify, rules, services, tasks
from console.alerts.models import (
    Alert,
    AlertState,
    Channel,
    Delivery,
    DeliveryState,
    Event,
    Rule,
    Thresholds,
)
from console.audit.models import AuditEvent
from console.audit.services import SYSTEM
from console.fleet.models import Device
from console.jobs import services as jobs
from tests.support import free_port

pytestmark = pytest.mark.django_db

GIB = 1024**3


def healthy(devices, now):
    """Every device backed up an hour ago, seen a minute ago, certificate
    valid for a year, no lease running out: no rule may fire."""
    for i, d in enumerate(devices):
        jobs.record_job_result(
            d.pk,
            f"ok-{d.pk}-{i}",
            ok=True,
            started_at=now - dt.timedelta(hours=1, minutes=5),
            finished_at=now - dt.timedelta(hours=1),
            stats={"bytes_added": 10 * 1024**2},
            snapshot_id=f"snap{i}",
        )
        jobs.record_job_result(
            d.pk,
            f"verify-{d.pk}",
            ok=True,
            kind="verify",
            finished_at=now - dt.timedelta(minutes=30),
            stats={"damaged_files": []},
        )
    Device.objects.filter(pk__in=[d.pk for d in devices]).update(
        last_seen_at=now - dt.timedelta(minutes=1),
        cert_expires_at=now + dt.timedelta(days=365),
        spool_lease_expires_at=now + dt.timedelta(days=5),
        storage_bytes=GIB,
    )


def fired_rules(now) -> dict:
    return {(rule, str(dev)): c for (rule, dev), c in rules.firing(now).items()}


@pytest.fixture
def fleet10(small_fleet):
    from tests.console.conftest import enroll

    more = enroll(small_fleet.token_plaintext, 7, prefix="lab")
    devices = small_fleet.devices + more
    now = timezone.now()
    healthy(devices, now)
    Thresholds.objects.create(repository_limit_bytes=100 * GIB)  # org default, limit on
    return devices, now


def test_healthy_fleet_is_quiet(fleet10):
    devices, now = fleet10
    assert fired_rules(now) == {}
    result = evaluation.evaluate(now)
    assert result.conditions == 0 and Alert.objects.count() == 0


def test_each_rule_fires_on_its_device_and_nowhere_else(fleet10):
    devices, now = fleet10
    d = devices
    # out of RPO: last success 3 days ago (RPO 24 h)
    Device.objects.filter(pk=d[0].pk).update(
        last_success_at=now - dt.timedelta(days=3),
        protected_until=now - dt.timedelta(days=2),
        at_risk_until=now,
    )
    # 3 failures in a row
    for i in range(3):
        jobs.record_job_result(d[1].pk, f"fail-{i}", ok=False, error="disk gone")
    # not seen for 9 days (threshold 7)
    Device.objects.filter(pk=d[2].pk).update(last_seen_at=now - dt.timedelta(days=9))
    # a test restore found damage (later than its clean verification)
    jobs.record_job_result(
        d[3].pk,
        "tr-1",
        ok=True,
        kind="test_restore",
        finished_at=now - dt.timedelta(minutes=5),
        stats={"damaged_files": ["C:/Users/a/report.docx", "C:/Users/a/\x1b[31mevil.txt"]},
    )
    # grew by 60 GiB in the last day (threshold 50 GiB)
    jobs.record_job_result(
        d[4].pk,
        "big",
        ok=True,
        finished_at=now - dt.timedelta(hours=2),
        stats={"bytes_added": 60 * GIB},
        snapshot_id="big",
    )
    # 95 GiB of a 100 GiB allowance (threshold 90 %)
    Device.objects.filter(pk=d[5].pk).update(storage_bytes=95 * GIB)
    # certificate expires in 10 days (threshold 30)
    Device.objects.filter(pk=d[6].pk).update(cert_expires_at=now + dt.timedelta(days=10))
    # offline 2 hours, lease ends in 3 hours (threshold 24)
    Device.objects.filter(pk=d[7].pk).update(
        last_seen_at=now - dt.timedelta(hours=2),
        spool_lease_expires_at=now + dt.timedelta(hours=3),
    )
    fired = fired_rules(now)
    expected = {
        (Rule.OUT_OF_RPO, str(d[0].pk)),
        (Rule.FAILURES, str(d[1].pk)),
        (Rule.NOT_SEEN, str(d[2].pk)),
        (Rule.DAMAGE, str(d[3].pk)),
        (Rule.GROWTH, str(d[4].pk)),
        (Rule.STORAGE_FULL, str(d[5].pk)),
        (Rule.CERT_EXPIRY, str(d[6].pk)),
        (Rule.OFFLINE_ALLOWANCE, str(d[7].pk)),
    }
    assert set(fired) == expected
    damage = fired[(Rule.DAMAGE, str(d[3].pk))]
    assert damage.detail["files"][0] == "C:/Users/a/report.docx"
    assert "\x1b" not in damage.message and "report.docx" in damage.message
    assert "3 backups failed" in fired[(Rule.FAILURES, str(d[1].pk))].message
    # a later clean verification ends the damage condition
    jobs.record_job_result(
        d[3].pk,
        "verify-again",
        ok=True,
        kind="verify",
        finished_at=now,
        stats={"damaged_files": []},
    )
    assert (Rule.DAMAGE, str(d[3].pk)) not in fired_rules(now)


def test_thresholds_per_group_override_the_default(fleet10, small_fleet):
    devices, now = fleet10
    Device.objects.filter(pk__in=[x.pk for x in devices]).update(
        last_seen_at=now - dt.timedelta(days=2)
    )
    assert fired_rules(now) == {}
    services.save_thresholds(SYSTEM, small_fleet.group, {"not_seen_days": 1})
    fired = fired_rules(now)
    in_group = {str(x.pk) for x in small_fleet.group.devices.all()}
    assert {dev for (_r, dev) in fired} == in_group and len(in_group) == 10
    # a group turning the rule off silences it for its devices
    services.save_thresholds(SYSTEM, small_fleet.group, {"not_seen": False})
    assert fired_rules(now) == {}
    with pytest.raises(services.AlertError) as err:
        services.save_thresholds(SYSTEM, None, {"storage_full_percent": 500})
    assert "storage_full_percent" in err.value.errors
    assert AuditEvent.objects.filter(action__startswith="alerts.thresholds").count() == 2


def _fail(device, n, key):
    for i in range(n):
        jobs.record_job_result(device.pk, f"{key}-{i}", ok=False, error="x")


def _succeed(device, key, _at):
    # the job clock is real time: a result counts if newer than the last one
    jobs.record_job_result(device.pk, key, ok=True, snapshot_id=key)


def test_a_flapping_device_gives_one_alert_and_one_resolve(fleet10):
    devices, start = fleet10
    device = devices[0]
    services.save_settings(SYSTEM, 15, 60)
    channel = services.save_channel(
        SYSTEM, None, {"name": "ops", "kind": "email", "recipients": ["ops@example.com"]}
    )
    step = dt.timedelta(minutes=5)
    now = start
    # a blip shorter than the hold-down: nothing at all
    _fail(device, 3, "blip")
    evaluation.evaluate(now)
    _succeed(device, "blip-ok", now)
    now += step
    evaluation.evaluate(now)
    assert list(Alert.objects.values_list("rule", "message")) == []
    # a real failure: fires after 15 minutes, once
    _fail(device, 3, "real")
    for _ in range(5):
        now += step
        evaluation.evaluate(now)
    # then it flaps every 5 minutes for two hours
    for i in range(24):
        now += step
        if i % 2:
            _fail(device, 3, f"flap{i}")
        else:
            _succeed(device, f"flap-ok{i}", now)
        evaluation.evaluate(now)
    # then healthy for two hours
    _succeed(device, "healthy", now)
    for _ in range(24):
        now += step
        evaluation.evaluate(now)
    alerts = list(Alert.objects.all())
    assert [(a.rule, a.state) for a in alerts] == [(Rule.FAILURES, AlertState.RESOLVED)]
    events = list(Delivery.objects.filter(channel=channel).values_list("event", flat=True))
    assert sorted(events) == [Event.FIRED, Event.RESOLVED]
    # two open alerts for the same (rule, device) are impossible
    with pytest.raises(IntegrityError), transaction.atomic():
        for _ in range(2):
            Alert.objects.create(
                rule=Rule.FAILURES,
                severity="warning",
                device=device,
                state="firing",
                message="x",
                started_at=now,
            )


def test_email_through_the_outbox_with_resolve(fleet10):
    devices, now = fleet10
    services.save_settings(SYSTEM, 0, 0)
    services.save_channel(
        SYSTEM,
        None,
        {"name": "mail", "kind": "email", "recipients": ["it@example.com", "boss@example.com"]},
    )
    Device.objects.filter(pk=devices[2].pk).update(
        hostname="evil\r\nBcc: x@y.z", last_seen_at=now - dt.timedelta(days=30)
    )
    result = evaluation.evaluate(now)
    for pk in result.deliveries:
        tasks.deliver.apply(args=[pk])
    assert len(mail.outbox) == 1
    msg = mail.outbox[0]
    assert msg.to == ["it@example.com", "boss@example.com"]
    assert "FIRING" in msg.subject and "Not seen" in msg.subject and "\n" not in msg.subject
    assert "Bcc" not in msg.extra_headers
    Device.objects.filter(pk=devices[2].pk).update(last_seen_at=now)
    evaluation.evaluate(now + dt.timedelta(minutes=1))  # clear_since starts
    result = evaluation.evaluate(now + dt.timedelta(minutes=2))
    for pk in result.deliveries:
        tasks.deliver.apply(args=[pk])
    assert len(mail.outbox) == 2 and "RESOLVED" in mail.outbox[1].subject


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        server.received.append((dict(self.headers), body))
        status = server.statuses.pop(0) if server.statuses else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Hook)
    server.received, server.statuses = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_webhook_signed_and_retried_after_a_500(fleet10, hook_server, monkeypatch):
    devices, now = fleet10
    monkeypatch.setattr(tasks, "BACKOFF_BASE", 0)
    services.save_settings(SYSTEM, 0, 0)
    url = f"http://127.0.0.1:{hook_server.server_port}/hook"
    secret = "s3cret-for-hmac"
    services.save_channel(
        SYSTEM,
        None,
        {"name": "slack", "kind": "webhook", "url": url, "secret": secret, "rules": ["damage"]},
    )
    jobs.record_job_result(
        devices[0].pk,
        "v-bad",
        ok=True,
        kind="verify",
        finished_at=now,
        stats={"damaged_files": ["D:/<!channel> a&b.xlsx"]},
    )
    Device.objects.filter(pk=devices[1].pk).update(last_seen_at=now - dt.timedelta(days=30))
    hook_server.statuses = [500]
    result = evaluation.evaluate(now)
    assert len(result.deliveries) == 1  # the channel only wants damage
    tasks.deliver.apply(args=[result.deliveries[0]])
    assert len(hook_server.received) == 2  # the 500, then the retry
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.SENT, 2)
    headers, body = hook_server.received[1]
    expected = (
        "sha256="
        + hmac.new(
            secret.encode(), headers["X-Cairn-Timestamp"].encode() + b"." + body, hashlib.sha256
        ).hexdigest()
    )
    assert hmac.compare_digest(headers["X-Cairn-Signature"], expected)
    payload = json.loads(body)
    assert payload["event"] == "fired" and payload["alert"]["rule"] == "damage"
    assert payload["device"]["hostname"] == devices[0].hostname
    assert "<!channel>" not in payload["text"] and "&lt;!channel&gt;" in payload["text"]
    assert payload["alert"]["detail"]["files"] == ["D:/<!channel> a&b.xlsx"]
    # a tampered body does not match
    assert notify.signature(secret, headers["X-Cairn-Timestamp"], body + b" ") != expected


def test_webhook_gives_up_after_the_last_attempt(fleet10, hook_server, monkeypatch):
    devices, now = fleet10
    monkeypatch.setattr(tasks, "BACKOFF_BASE", 0)
    services.save_settings(SYSTEM, 0, 0)
    url = f"http://127.0.0.1:{hook_server.server_port}/hook"
    services.save_channel(SYSTEM, None, {"name": "h", "kind": "webhook", "url": url})
    Device.objects.filter(pk=devices[1].pk).update(last_seen_at=now - dt.timedelta(days=30))
    hook_server.statuses = [503] * 20
    result = evaluation.evaluate(now)
    tasks.deliver.apply(args=[result.deliveries[0]])
    d = Delivery.objects.get()
    assert (d.state, d.attempts) == (DeliveryState.FAILED, notify.MAX_ATTEMPTS)
    assert len(hook_server.received) == notify.MAX_ATTEMPTS and "503" in d.last_error
    assert [tasks.backoff(n) for n in range(4)] == [0, 0, 0, 0]
    monkeypatch.setattr(tasks, "BACKOFF_BASE", 30)
    assert [tasks.backoff(n) for n in range(4)] == [30, 60, 120, 240]


def test_daily_digest_instead_of_each_alert(fleet10):
    devices, now = fleet10
    services.save_settings(SYSTEM, 0, 0)
    channel = services.save_channel(
        SYSTEM,
        None,
        {"name": "d", "kind": "email", "recipients": ["a@example.com"], "digest": True},
    )
    Channel.objects.filter(pk=channel.pk).update(created_at=now - dt.timedelta(days=2))
    Device.objects.filter(pk__in=[devices[1].pk, devices[2].pk]).update(
        last_seen_at=now - dt.timedelta(days=30)
    )
    assert evaluation.evaluate(now).deliveries == []
    ids = notify.queue_digests(now + dt.timedelta(minutes=1))
    assert len(ids) == 1
    tasks.deliver.apply(args=[ids[0]])
    assert len(mail.outbox) == 1 and "2 alert(s)" in mail.outbox[0].subject
    assert notify.queue_digests(now + dt.timedelta(hours=2)) == []  # once a day


def test_a_burst_becomes_one_summary(fleet10, small_fleet):
    from tests.console.conftest import enroll

    devices, now = fleet10
    enroll(small_fleet.token_plaintext, 15, prefix="burst")
    services.save_settings(SYSTEM, 0, 0)
    services.save_channel(SYSTEM, None, {"name": "m", "kind": "email", "recipients": ["a@b.co"]})
    Device.objects.update(last_seen_at=now - dt.timedelta(days=30))
    result = evaluation.evaluate(now)
    assert len(result.fired) == 25 and len(result.deliveries) == 1
    tasks.deliver.apply(args=[result.deliveries[0]])
    assert len(mail.outbox) == 1 and "25 alert(s)" in mail.outbox[0].subject
    assert mail.outbox[0].body.count("Not seen on") == 25


def test_api_channels_thresholds_settings_and_acknowledge(api, small_fleet):
    admin = api("admin")
    r = admin.post(
        "/api/v1/alert-channels/",
        {"name": "teams", "kind": "webhook", "url": "https://example.com/h", "secret": "k1",
         "rules": ["damage", "out_of_rpo"]},
        format="json",
    )  # fmt: skip
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["has_secret"] is True and "secret" not in body
    assert Channel.objects.get().secret == "k1"
    bad = admin.post(
        "/api/v1/alert-channels/",
        {"name": "x", "kind": "webhook", "url": "file:///etc/passwd"},
        format="json",
    )
    assert bad.status_code == 400 and "url" in bad.json()
    bad = admin.post(
        "/api/v1/alert-channels/", {"name": "y", "kind": "email", "recipients": []}, format="json"
    )
    assert bad.status_code == 400 and "recipients" in bad.json()
    bad = admin.post(
        "/api/v1/alert-channels/",
        {"name": "teams", "kind": "email", "recipients": ["a@b.co"]},
        format="json",
    )
    assert bad.status_code == 400 and "name" in bad.json()
    r = admin.patch(f"/api/v1/alert-channels/{body['id']}/", {"enabled": False}, format="json")
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert Channel.objects.get().secret == "k1"  # kept when not given

    r = admin.post(
        "/api/v1/alert-thresholds/",
        {"group": small_fleet.group.pk, "failures_in_a_row": 5},
        format="json",
    )
    assert r.status_code == 201 and r.json()["failures_in_a_row"] == 5
    r = admin.post("/api/v1/alert-thresholds/", {"storage_full_percent": 101}, format="json")
    assert r.status_code == 400 and "storage_full_percent" in r.json()
    r = admin.put(
        "/api/v1/alert-settings/",
        {"open_after_minutes": 5, "resolve_after_minutes": -1},
        format="json",
    )
    assert r.status_code == 400
    r = admin.put(
        "/api/v1/alert-settings/",
        {"open_after_minutes": 5, "resolve_after_minutes": 20},
        format="json",
    )
    assert r.status_code == 200 and r.json()["resolve_after_minutes"] == 20

    services.save_settings(SYSTEM, 0, 0)
    Device.objects.filter(pk=small_fleet.devices[0].pk).update(
        last_seen_at=timezone.now() - dt.timedelta(days=30)
    )
    evaluation.evaluate()
    alert = Alert.objects.get(rule=Rule.NOT_SEEN)
    auditor = api("auditor")
    listed = auditor.get("/api/v1/alerts/?state=firing&rule=not_seen").json()["results"]
    assert [a["id"] for a in listed] == [alert.pk]
    assert auditor.get("/api/v1/alerts/?rule=nonsense").status_code == 400
    assert auditor.post(f"/api/v1/alerts/{alert.pk}/acknowledge/").status_code == 403
    r = api("operator").post(f"/api/v1/alerts/{alert.pk}/acknowledge/")
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "operator"
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "alerts.channel.create", "alerts.channel.update", "alerts.thresholds.create",
        "alerts.settings.update", "alerts.alert.acknowledge",
    } <= actions  # fmt: skip
    audited = AuditEvent.objects.filter(action="alerts.channel.create").get()
    assert "k1" not in json.dumps(audited.after)


def test_pages_list_alerts_and_admins_change_rules(ui, small_fleet):
    services.save_settings(SYSTEM, 0, 0)
    Device.objects.filter(pk=small_fleet.devices[0].pk).update(
        hostname="<script>alert(1)</script>", last_seen_at=timezone.now() - dt.timedelta(days=30)
    )
    evaluation.evaluate()
    page = ui("auditor").get("/alerts/").content.decode()
    assert "Not seen" in page and "&lt;script&gt;" in page and "<script>alert" not in page
    assert "Acknowledge</button>" not in page
    operator = ui("operator")
    assert "Acknowledge</button>" in operator.get("/alerts/").content.decode()
    alert = Alert.objects.get()
    assert operator.post(f"/alerts/{alert.pk}/acknowledge/").status_code == 302
    assert Alert.objects.get().acknowledged_by.username == "operator"
    admin = ui("admin")
    r = admin.post(
        "/alerts/rules/",
        {"action": "channel", "name": "ops mail", "kind": "email",
         "recipients": "a@example.com\nb@example.com", "send_resolved": "on"},
    )  # fmt: skip
    assert r.status_code == 302
    assert Channel.objects.get().recipients == ["a@example.com", "b@example.com"]
    r = admin.post(
        "/alerts/rules/",
        {"action": "thresholds", "group": small_fleet.group.pk, "failures": "on",
         **{name: low for name, (low, _high) in services.BOUNDS.items()}},
    )  # fmt: skip
    assert r.status_code == 302
    row = Thresholds.objects.get(group=small_fleet.group)
    assert row.failures and not row.not_seen and row.failures_in_a_row == 1
    rules_page = ui("auditor").get("/alerts/rules/").content.decode()
    assert "ops mail" in rules_page and "Finance" in rules_page
    assert "Create channel" not in rules_page
    r = admin.post("/alerts/rules/", {"action": "settings", "open_after_minutes": "-3"})
    assert r.status_code == 200 and "greater than or equal to 0" in r.content.decode()


def test_device_page_lists_open_alerts_first_then_the_last_resolved(ui, small_fleet):
    from console.alerts import queries

    device, other = small_fleet.devices[0], small_fleet.devices[1]
    now = timezone.now()

    def alert(rule, state, started_days, resolved_days=None, on=device, message="m"):
        return Alert.objects.create(
            rule=rule, severity="warning", device=on, state=state, message=message,
            started_at=now - dt.timedelta(days=started_days),
            resolved_at=None if resolved_days is None else now - dt.timedelta(days=resolved_days),
        )  # fmt: skip

    # seven resolved, the oldest-started resolved most recently
    resolved = [alert(Rule.FAILURES, AlertState.RESOLVED, 30 + i, 20 - i) for i in range(7)]
    firing = alert(Rule.NOT_SEEN, AlertState.FIRING, 40, message="<b>not seen 40 d</b>")
    pending = alert(Rule.GROWTH, AlertState.PENDING, 1)
    alert(Rule.DAMAGE, AlertState.FIRING, 1, on=other, message="someone else's")

    shown = queries.for_device(device)
    # open ones first (newest first), then the 5 most recently resolved
    assert [a.pk for a in shown] == [pending.pk, firing.pk] + [a.pk for a in resolved[::-1][:5]]
    assert queries.for_device(device, resolved=0) == [pending, firing]
    assert queries.for_device(other)[0].message == "someone else's"

    html = ui("auditor").get(f"/devices/{device.pk}/").content.decode()
    section = html[html.index('data-testid="device-alerts"') :]
    section = section[: section.index("</section>")]
    assert section.count("<tr data-alert-state=") == 7
    assert section.index('data-alert-state="pending"') < section.index('"firing"')
    assert section.index('"firing"') < section.index('"resolved"')
    assert "Not seen" in section and "Firing" in section and "Resolved" in section
    assert "&lt;b&gt;not seen 40 d&lt;/b&gt;" in section and "<b>not" not in section
    assert "someone else" not in section
    assert f'href="/alerts/?device={device.pk}"' in section
    listed = ui("auditor").get(f"/alerts/?device={device.pk}").content.decode()
    assert "someone else" not in listed and "not seen 40 d" in listed

    empty = ui("auditor").get(f"/devices/{small_fleet.devices[2].pk}/").content.decode()
    assert "No alerts for this device." in empty


def test_bench_measures_two_passes_and_leaves_nothing(fleet10):
    from console.alerts import bench

    devices, now = fleet10
    Device.objects.update(last_seen_at=now - dt.timedelta(days=30))
    t = bench.measure(1)
    assert (t.devices, t.conditions, t.fired) == (10, 10, 10)
    assert t.queries < 20  # a fixed number of queries, not one per device
    assert Alert.objects.count() == 0


def test_beat_task_evaluates_and_delivers(fleet10, monkeypatch):
    """The beat task is the service plus one delivery task per notification
    (run eagerly here: the worker is the same code)."""
    from console.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)
    devices, now = fleet10
    services.save_settings(SYSTEM, 0, 0)
    services.save_channel(SYSTEM, None, {"name": "m", "kind": "email", "recipients": ["a@b.co"]})
    Device.objects.filter(pk=devices[0].pk).update(last_seen_at=now - dt.timedelta(days=30))
    assert tasks.evaluate.apply().get() == {
        "conditions": 1, "fired": 1, "resolved": 0, "deliveries": 1,
    }  # fmt: skip
    assert len(mail.outbox) == 1 and Delivery.objects.get().state == DeliveryState.SENT
