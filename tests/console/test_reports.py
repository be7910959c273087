"""The daily device history and the compliance report, against a fleet whose
answers this test computes on its own.

Timeline (RPO 6 h; the period is three closed UTC days D1..D3; D0 the day before):
- pc-hourly: a successful backup at every hh:30 from D0 to D3; a clean
  verification on D2 and a test restore of 12.5 s on D3;
- pc-missed: hourly on D0, D1 and D3, nothing on D2 but one failure; its
  verification found a damaged file, its test restore reported garbage;
- the never-backed-up PC (its host name is a spreadsheet formula): one failure;
- pc-gone: last backup and last contact ten days before D1 (not seen);
- pc-mover: hourly until D1 12:30, nothing on D2, hourly again from D3 06:30;
  in group Laptops on D1 and D2, moved to Desktops before D3 was filled.
Shares are asserted twice: against values worked out by hand, and against a
minute-by-minute evaluation of "last success finished >= t - RPO" over the
timeline.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from console.audit.models import AuditEvent
from console.audit.services import SYSTEM
from console.fleet import services as fleet
from console.fleet.models import Device
from console.jobs.models import JobRun
from console.policies import services as policies
from console.policies import spec as specs
from console.reports import compliance, exports, history
from console.reports.models import DeviceDay, GeneratedReport

pytestmark = pytest.mark.django_db

RPO = timedelta(hours=6)
HOSTILE = "=cmd|' /C calc'!A0"


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def hourly(day: date, first: int = 0, last: int = 23) -> list[datetime]:
    return [at(day, h, 30) for h in range(first, last + 1)]


@dataclass
class Seeded:
    d0: date
    d1: date
    d3: date
    laptops: object
    desktops: object
    policy: object
    devices: dict
    successes: dict
    now: datetime


def _run(device, kind, state, finished, **extra) -> JobRun:
    return JobRun(
        device=device,
        kind=kind,
        state=state,
        started_at=finished - timedelta(minutes=10),
        finished_at=finished,
        updated_at=finished,
        **extra,
    )


@pytest.fixture
def seeded(db) -> Seeded:
    d0 = datetime.now(UTC).date() - timedelta(days=12)
    d1, d2, d3 = d0 + timedelta(days=1), d0 + timedelta(days=2), d0 + timedelta(days=3)
    laptops = fleet.create_group(SYSTEM, "Laptops")
    desktops = fleet.create_group(SYSTEM, "Desktops")
    spec = specs.default_spec()
    spec["rpo_hours"] = 6
    spec["schedule"]["every_hours"] = 1
    policy = policies.create_policy(SYSTEM, "Six hours", spec)
    policies.assign_policy(SYSTEM, policy, laptops, 10)
    policies.assign_policy(SYSTEM, policy, desktops, 10)
    enrolled = at(d0, 0) - timedelta(days=20)
    seen_last = at(d3, 23, 40)
    gone_at = at(d0, 12) - timedelta(days=10)
    names = {
        "hourly": ("pc-hourly", seen_last),
        "missed": ("pc-missed", seen_last),
        "never": (HOSTILE, at(d3, 12)),
        "gone": ("pc-gone", gone_at),
        "mover": ("pc-mover", seen_last),
    }
    devices = {}
    for key, (hostname, seen) in names.items():
        d = Device.objects.create(
            hostname=hostname, os="windows", enrolled_at=enrolled, last_seen_at=seen
        )
        fleet.set_device_groups(SYSTEM, d, [laptops])
        devices[key] = d
    successes = {
        "hourly": hourly(d0) + hourly(d1) + hourly(d2) + hourly(d3),
        "missed": hourly(d0) + hourly(d1) + hourly(d3),
        "never": [],
        "gone": [gone_at],
        "mover": hourly(d0) + hourly(d1, 0, 12) + hourly(d3, 6, 23),
    }
    runs = []
    for key, times in successes.items():
        for n, t in enumerate(times):
            runs.append(
                _run(
                    devices[key],
                    "backup",
                    "succeeded",
                    t,
                    bytes_added=1000,
                    stats={"repository_bytes": 50_000 + n},
                    warnings_count=n % 2,
                )
            )
    runs += [
        _run(devices["missed"], "backup", "failed", at(d2, 12), error="disk full"),
        _run(devices["never"], "backup", "failed", at(d1, 10), error="no network"),
        _run(devices["hourly"], "verify", "succeeded", at(d2, 3), stats={"damaged": []}),
        _run(
            devices["hourly"],
            "test_restore",
            "succeeded",
            at(d3, 4),
            stats={"damaged": [], "duration_s": 12.5, "throughput_bps": 8e7, "files_compared": 9},
        ),
        _run(
            devices["missed"],
            "verify",
            "succeeded",
            at(d2, 5),
            stats={"damaged": ["ab12"], "damaged_files": ["=evil.xlsx"]},
        ),
        _run(
            devices["missed"],
            "test_restore",
            "succeeded",
            at(d3, 5),
            stats={"duration_s": "NaN", "throughput_bps": -1},
        ),
    ]
    JobRun.objects.bulk_create(runs)
    history.fill_days(d1, d2)
    fleet.set_device_groups(SYSTEM, devices["mover"], [desktops])
    history.fill_days(d3, d3)
    return Seeded(
        d0, d1, d3, laptops, desktops, policy, devices, successes, at(d3, 0) + timedelta(days=5)
    )


def minute_share(successes: list[datetime], days: list[date]) -> float:
    """Share of the minutes of ``days`` (sampled mid-minute) at which the last
    success finished at or after t - RPO: the definition, evaluated directly."""
    inside = total = 0
    for day in days:
        for minute in range(24 * 60):
            t = at(day, 0) + timedelta(minutes=minute, seconds=30)
            done = [s for s in successes if s <= t]
            total += 1
            inside += bool(done) and max(done) >= t - RPO
    return inside / total


def rows_by_host(report) -> dict:
    return {r.hostname: r for r in report.devices}


def test_rpo_shares_match_the_timeline(seeded):
    s = seeded
    days = [s.d1 + timedelta(days=i) for i in range(3)]
    report = compliance.build_compliance_report(s.d1, s.d3, compliance.Scope.all())
    rows = rows_by_host(report)
    # by hand
    assert rows["pc-hourly"].achieved_share == 1.0
    assert rows["pc-missed"].achieved_share == round((24 + 5.5 + 23.5) / 72, 6)
    assert rows["pc-mover"].achieved_share == round((18.5 + 0 + 17.5) / 72, 6)
    assert rows[HOSTILE].achieved_share == 0.0 and rows["pc-gone"].achieved_share == 0.0
    # by the definition, minute by minute
    for key in ("hourly", "missed", "mover", "gone"):
        host = s.devices[key].hostname
        assert rows[host].achieved_share == pytest.approx(
            minute_share(s.successes[key], days), abs=1e-6
        ), key
    assert report.totals.within_rpo_share == round((72 + 53 + 36) / (5 * 72), 6)


def test_group_membership_counts_per_day(seeded):
    s = seeded
    laptops = compliance.build_compliance_report(s.d1, s.d3, compliance.Scope.group(s.laptops.pk))
    desktops = compliance.build_compliance_report(s.d1, s.d3, compliance.Scope.group(s.desktops.pk))
    mover_a = rows_by_host(laptops)["pc-mover"]
    mover_b = rows_by_host(desktops)["pc-mover"]
    assert mover_a.achieved_share == round(18.5 / 48, 6)
    assert mover_a.successes == 13 and mover_a.groups == ["Laptops"]
    assert mover_b.achieved_share == round(17.5 / 24, 6)
    assert mover_b.successes == 18 and mover_b.groups == ["Desktops"]
    assert desktops.totals.devices == 1 and laptops.totals.devices == 5
    assert desktops.scope_label == f"group Desktops (#{s.desktops.pk})"
    by_policy = compliance.build_compliance_report(s.d1, s.d3, compliance.Scope.policy(s.policy.pk))
    assert rows_by_host(by_policy)["pc-mover"].achieved_share == 0.5
    with pytest.raises(compliance.ScopeError):
        compliance.Scope.group(999999)


def test_rows_status_order_totals_and_checks(seeded):
    s = seeded
    report = compliance.build_compliance_report(s.d1, s.d3)
    assert [r.hostname for r in report.devices] == [
        HOSTILE,
        "pc-gone",
        "pc-missed",
        "pc-mover",
        "pc-hourly",
    ]
    assert [r.status for r in report.devices] == [
        "never backed up",
        "not seen",
        "out of RPO",
        "out of RPO",
        "ok",
    ]
    t = report.totals
    assert (t.devices, t.never_backed_up, t.not_seen, t.failures) == (5, 1, 1, 2)
    assert t.bytes_added == (72 + 48 + 31) * 1000
    assert (t.verified, t.test_restored) == (1, 1)
    rows = rows_by_host(report)
    hourly_row = rows["pc-hourly"]
    assert hourly_row.rpo_hours == 6.0 and hourly_row.successes == 72
    assert hourly_row.last_good_backup == at(s.d3, 23, 30)
    assert hourly_row.repository_bytes == 50_000 + 95
    assert hourly_row.verification_result == "ok" and hourly_row.test_restore_result == "ok"
    assert hourly_row.rto_seconds == 12.5 and hourly_row.restore_throughput_bps == 8e7
    assert "AES-256-GCM" in hourly_row.encryption and "always" in hourly_row.encryption
    assert "keep last 10" in hourly_row.retention
    missed = rows["pc-missed"]
    assert missed.failures == 1 and missed.successes == 48
    assert missed.verification_result == "damaged: 1 objects, 1 files (=evil.xlsx)"
    assert missed.test_restore_result == "unknown" and missed.rto_seconds is None
    assert missed.restore_throughput_bps is None
    assert rows[HOSTILE].last_good_backup is None and rows[HOSTILE].verification_result == "none"
    controls = {(c.framework, c.control) for c in report.controls}
    assert controls == {
        ("ISO/IEC 27001:2022", "A.8.13"),
        ("SOC 2", "A1.2"),
        ("SOC 2", "A1.3"),
        ("HIPAA", "§164.308(a)(7)(ii)(A)"),
        ("HIPAA", "§164.308(a)(7)(ii)(D)"),
    }
    assert all(c.evidenced_by and c.result.startswith(("met", "gaps")) for c in report.controls)
    assert "5 devices" in report.source and s.d1.isoformat() in report.source


def test_past_periods_are_reproducible(seeded):
    s = seeded
    before = compliance.build_compliance_report(s.d1, s.d3, now=s.now)
    assert before.digest == hashlib.sha256(compliance.canonical_json(before)).hexdigest()
    # the world changes: a device is deleted, the RPO doubled, groups moved
    s.devices["hourly"].delete()
    spec = specs.default_spec()
    spec["rpo_hours"] = 12
    policies.update_policy(SYSTEM, s.policy, s.policy.name, spec)
    fleet.set_device_groups(SYSTEM, s.devices["missed"], [s.desktops])
    history.fill_days(s.d1, s.d3)  # refilled: idempotent
    after = compliance.build_compliance_report(s.d1, s.d3, now=s.now)
    assert after == before and after.digest == before.digest
    assert "pc-hourly" in rows_by_host(after)
    assert DeviceDay.objects.filter(hostname="pc-hourly").count() == 3


def test_fill_refuses_open_days_and_fills_missing(seeded):
    s = seeded
    with pytest.raises(ValueError, match="not a closed day"):
        history.fill_days(s.d1, datetime.now(UTC).date())
    with pytest.raises(ValueError, match="before it starts"):
        history.fill_days(s.d3, s.d1)
    written = history.fill_missing(max_days=2)
    assert written == 2 * Device.objects.count()
    assert history.fill_missing(max_days=2) == Device.objects.count()  # yesterday again


def test_within_seconds_unit():
    day = date(2026, 1, 2)
    start, end = history.day_bounds(day)
    assert history.within_seconds([], RPO, start, end) == 0
    assert history.within_seconds([at(day, 0) - timedelta(hours=1)], RPO, start, end) == 5 * 3600
    overlapping = [at(day, 1), at(day, 2), at(day, 20)]
    assert history.within_seconds(overlapping, RPO, start, end) == (7 + 4) * 3600


def test_untrusted_stats_are_bounded():
    assert history.number(float("inf"), 10) is None and history.number(True, 10) is None
    assert history.number("5", 10) is None and history.number(11, 10) is None
    assert history.check_result("failed", {"damaged": []}) == "failed"
    assert history.check_result("succeeded", "not a dict") == "unknown"
    long = history.check_result("succeeded", {"damaged_files": ["x" * 500] * 9})
    assert len(long) <= 255 and long.startswith("damaged: 0 objects, 9 files")


# --- API, files, digests ---------------------------------------------------------


def _url(s, **extra) -> str:
    params = {"from": s.d1.isoformat(), "to": s.d3.isoformat(), **extra}
    return "/api/v1/reports/compliance/?" + "&".join(f"{k}={v}" for k, v in params.items())


def test_api_json_is_the_report_and_its_digest_is_kept(api, seeded):
    r = api("auditor").get(_url(seeded))
    assert r.status_code == 200, r.content[:300]
    body = json.loads(r.content)
    assert body["totals"]["devices"] == 5
    assert body["devices"][0]["status"] == "never backed up"
    kept = GeneratedReport.objects.get()
    assert kept.sha256 == hashlib.sha256(r.content).hexdigest() == r["X-Report-SHA256"]
    assert kept.report_digest == body["digest"] and kept.format == "json"
    assert kept.generated_by_name == "auditor" and kept.scope == "all devices"
    event = AuditEvent.objects.get(action="report.export")
    assert event.actor_name == "auditor" and event.after["sha256"] == kept.sha256


def test_api_csv_neutralises_and_verifies(api, seeded):
    client = api("auditor")
    r = client.get(_url(seeded, group=seeded.laptops.pk, format="csv"))
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert len(rows) == 5
    assert rows[0]["hostname"] == "'" + HOSTILE
    mover = next(row for row in rows if row["hostname"] == "pc-mover")
    assert float(mover["achieved_share"]) == round(18.5 / 48, 6) and mover["groups"] == "Laptops"
    good = client.post(
        "/api/v1/reports/verify/",
        {"file": SimpleUploadedFile("r.csv", r.content)},
        format="multipart",
    )
    assert good.status_code == 200 and good.json()["match"] is True
    kept = GeneratedReport.objects.get()
    assert good.json()["report"]["id"] == kept.pk and "matches" in good.json()["message"]
    tampered = r.content.replace(b"pc-mover", b"pc-m0ver")
    bad = client.post(
        "/api/v1/reports/verify/",
        {"file": SimpleUploadedFile("r.csv", tampered)},
        format="multipart",
    )
    assert bad.status_code == 200 and bad.json()["match"] is False
    assert bad.json()["report"] is None and bad.json()["message"].startswith("no match")


def test_api_refuses_bad_input_clearly(api, seeded):
    client = api("admin")
    today = datetime.now(UTC).date().isoformat()
    cases = {
        "/api/v1/reports/compliance/?to=2026-01-01": "from",
        "/api/v1/reports/compliance/?from=2026-13-01&to=2026-01-01": "from",
        _url(seeded, format="xml"): "format",
        f"/api/v1/reports/compliance/?from={seeded.d1}&to={today}": "to",
        f"/api/v1/reports/compliance/?from={seeded.d3}&to={seeded.d1}": "to",
        "/api/v1/reports/compliance/?from=2020-01-01&to=2026-01-01": "from",
        _url(seeded, group=999999): "group",
        _url(seeded, group=seeded.laptops.pk, policy=seeded.policy.pk): "policy",
    }
    for url, field in cases.items():
        r = client.get(url)
        assert r.status_code == 400, (url, r.status_code)
        assert field in r.json(), (url, r.json())
    assert not GeneratedReport.objects.exists()


def test_operator_and_nobody_get_no_report(api, seeded):
    for role in ("operator", "nobody"):
        assert api(role).get(_url(seeded)).status_code == 403
        assert api(role).post("/api/v1/reports/verify/", {}, format="json").status_code == 403


def test_dashboard_file_and_pdf(ui, seeded):
    url = f"/reports/compliance/file/?from={seeded.d1}&to={seeded.d3}&format=pdf"
    r = ui("auditor").get(url)
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    assert GeneratedReport.objects.get().sha256 == hashlib.sha256(r.content).hexdigest()
    assert ui("auditor").get(url.replace("format=pdf", "format=doc")).status_code == 400
    assert ui("operator").get(url).status_code == 403


def test_commands(tmp_path, seeded, capsys):
    out = tmp_path / "report.json"
    call_command("reports_backfill", "--from", str(seeded.d1), "--to", str(seeded.d3))
    call_command(
        "compliance_report",
        "--from",
        str(seeded.d1),
        "--to",
        str(seeded.d3),
        "--policy",
        str(seeded.policy.pk),
        "--format",
        "json",
        "--output",
        str(out),
    )
    data = json.loads(out.read_bytes())
    assert data["totals"]["devices"] == 5 and data["scope_label"].startswith("policy Six hours")
    kept = GeneratedReport.objects.get()
    assert kept.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert kept.generated_by_name == "system"
    assert exports.verify(SYSTEM, out.read_bytes()).report == kept
    with pytest.raises(CommandError, match="not a day"):
        call_command("reports_backfill", "--from", "yesterday", "--to", str(seeded.d3))
    with pytest.raises(CommandError, match="no group"):
        call_command(
            "compliance_report",
            "--from",
            str(seeded.d1),
            "--to",
            str(seeded.d3),
            "--group",
            "999999",
            "--output",
            str(out),
        )
