"""Roles are enforced identically in the UI and the API: one matrix per
capability, every role, both doors. Allowed = the request is not refused
(a 400 for deliberately incomplete input still proves the door opened)."""

import pytest

from console.accounts.roles import CAPABILITIES, ROLES
from console.policies import spec as specs

pytestmark = pytest.mark.django_db

ROLE_OF = {"admin": "Admin", "operator": "Operator", "auditor": "Auditor", "nobody": None}


def _dev(f):
    return f.devices[0].pk


def _alert(f):
    """An open alert on the fleet's first device (created on first use)."""
    from django.utils import timezone

    from console.alerts.models import Alert

    alert, _ = Alert.objects.get_or_create(
        rule="failures",
        device_id=_dev(f),
        state="firing",
        defaults={"severity": "warning", "message": "3 failed", "started_at": timezone.now()},
    )
    return alert.pk


# capability -> (method, url(fleet), data)
UI = {
    "view": [
        ("get", lambda f: "/", None),
        ("get", lambda f: "/devices/?status=protected", None),
        ("get", lambda f: f"/devices/{_dev(f)}/", None),
        ("get", lambda f: "/groups/", None),
        ("get", lambda f: f"/groups/{f.group.pk}/", None),
        ("get", lambda f: "/policies/", None),
        ("get", lambda f: f"/policies/{f.policy.pk}/", None),
        ("get", lambda f: f"/policies/{f.policy.pk}/revisions/1/", None),
        ("get", lambda f: "/jobs/", None),
        ("get", lambda f: "/commands/", None),
        ("get", lambda f: "/devices/export.csv?status=protected", None),
        ("get", lambda f: "/alerts/?state=firing", None),
        ("get", lambda f: "/alerts/rules/", None),
    ],
    "alert.acknowledge": [("post", lambda f: f"/alerts/{_alert(f)}/acknowledge/", {})],
    "alert.manage": [
        (
            "post",
            lambda f: "/alerts/rules/",
            {"action": "settings", "open_after_minutes": 10, "resolve_after_minutes": 30},
        )
    ],
    "device.backup": [("post", lambda f: f"/devices/{_dev(f)}/backup/", {})],
    "device.download": [
        ("get", lambda f: "/files/search/", None),
        ("get", lambda f: f"/files/search/?q=report&device={_dev(f)}", None),
    ],
    "device.verify": [("post", lambda f: f"/devices/{_dev(f)}/verify/", {})],
    "device.restore": [("get", lambda f: f"/devices/{_dev(f)}/restore/", None)],
    "device.revoke": [
        ("post", lambda f: f"/devices/{f.devices[2].pk}/revoke/", {}),
        ("get", lambda f: f"/devices/{f.devices[2].pk}/replace/", None),  # takeover (issue 11)
    ],
    "device.edit": [
        ("post", lambda f: f"/devices/{_dev(f)}/groups/", lambda f: {"groups": [f.group.pk]})
    ],
    "group.manage": [("post", lambda f: "/groups/", {"name": "New"})],
    "policy.manage": [
        ("get", lambda f: "/policies/new/", None),
        ("get", lambda f: f"/policies/{f.policy.pk}/edit/", None),
        (
            "post",
            lambda f: f"/policies/{f.policy.pk}/",
            lambda f: {"group": f.other_group.pk, "precedence": 5},
        ),
    ],
    "token.view": [("get", lambda f: "/enrollment/", None)],
    "token.manage": [
        ("post", lambda f: "/enrollment/", {"name": "x", "expires_days": 1, "max_uses": 1})
    ],
    "storage.view": [("get", lambda f: "/storage/", None)],
    "storage.manage": [("get", lambda f: "/storage/new/", None)],
    "audit.view": [
        ("get", lambda f: "/audit/", None),
        ("get", lambda f: "/audit/export.csv", None),
    ],
    "user.manage": [("get", lambda f: "/users/", None), ("get", lambda f: "/users/new/", None)],
    "report.view": [
        (
            "get",
            lambda f: "/reports/compliance/file/?from=2026-01-01&to=2026-01-02&format=csv",
            None,
        ),
        ("get", lambda f: "/reports/", None),
        ("get", lambda f: "/reports/schedules/", None),
        ("get", lambda f: "/reports/past/", None),
    ],
    "hold.view": [
        ("get", lambda f: "/holds/?state=active", None),
        ("get", lambda f: "/holds/export.csv", None),
    ],
    "hold.manage": [
        ("post", lambda f: "/holds/", lambda f: {"scope": "device", "device": _dev(f)}),
    ],
    "report.manage": [
        (
            "post",
            lambda f: "/reports/schedules/",
            {
                "name": "S",
                "frequency": "weekly",
                "scope_kind": "all",
                "recipients": "a@example.com",
            },
        )
    ],
}

API = {
    "view": [
        ("get", lambda f: "/api/v1/overview/", None),
        ("get", lambda f: "/api/v1/devices/", None),
        ("get", lambda f: f"/api/v1/devices/{_dev(f)}/", None),
        ("get", lambda f: "/api/v1/groups/", None),
        ("get", lambda f: "/api/v1/policies/", None),
        ("get", lambda f: f"/api/v1/policies/{f.policy.pk}/revisions/", None),
        ("get", lambda f: "/api/v1/jobs/", None),
        ("get", lambda f: "/api/v1/commands/", None),
        ("get", lambda f: "/api/v1/snapshots/", None),
        ("get", lambda f: "/api/v1/assignments/", None),
        ("get", lambda f: "/api/v1/alerts/", None),
        ("get", lambda f: "/api/v1/alert-thresholds/", None),
        ("get", lambda f: "/api/v1/alert-channels/", None),
        ("get", lambda f: "/api/v1/alert-settings/", None),
    ],
    "alert.acknowledge": [("post", lambda f: f"/api/v1/alerts/{_alert(f)}/acknowledge/", {})],
    "alert.manage": [
        (
            "put",
            lambda f: "/api/v1/alert-settings/",
            {"open_after_minutes": 10, "resolve_after_minutes": 30},
        ),
        ("post", lambda f: "/api/v1/alert-channels/", {"name": "c", "kind": "email"}),
        ("post", lambda f: "/api/v1/alert-thresholds/", {"failures_in_a_row": 2}),
    ],
    "device.backup": [("post", lambda f: f"/api/v1/devices/{_dev(f)}/backup/", {})],
    "device.download": [
        ("get", lambda f: f"/api/v1/files/search/?q=report&device={_dev(f)}", None),
        ("get", lambda f: f"/api/v1/devices/{_dev(f)}/snapshots/latest/download/", None),
    ],
    "device.verify": [("post", lambda f: f"/api/v1/devices/{_dev(f)}/verify/", {})],
    "device.restore": [
        ("post", lambda f: f"/api/v1/devices/{_dev(f)}/restore/", {"snapshot_id": "x"}),
        (  # onto another device (issue 11)
            "post",
            lambda f: f"/api/v1/devices/{_dev(f)}/restore/",
            lambda f: {"snapshot_id": "x", "target_device": str(f.devices[1].pk)},
        ),
    ],
    "device.revoke": [
        ("post", lambda f: f"/api/v1/devices/{f.devices[2].pk}/revoke/", {}),
        (  # takeover (issue 11): the replaced device is revoked
            "post",
            lambda f: f"/api/v1/devices/{f.devices[2].pk}/replace/",
            lambda f: {"replacement": str(f.devices[2].pk)},
        ),
    ],
    "device.edit": [
        ("put", lambda f: f"/api/v1/devices/{_dev(f)}/groups/", lambda f: {"groups": [f.group.pk]})
    ],
    "group.manage": [("post", lambda f: "/api/v1/groups/", {"name": "New"})],
    "policy.manage": [
        ("post", lambda f: "/api/v1/policies/", {"name": "P2", "spec": specs.default_spec()}),
        (
            "post",
            lambda f: f"/api/v1/policies/{f.policy.pk}/assign/",
            lambda f: {"group": f.other_group.pk},
        ),
    ],
    "token.view": [("get", lambda f: "/api/v1/enrollment-tokens/", None)],
    "token.manage": [("post", lambda f: "/api/v1/enrollment-tokens/", {"name": "x"})],
    "storage.view": [("get", lambda f: "/api/v1/storage-targets/", None)],
    "storage.manage": [
        (
            "post",
            lambda f: "/api/v1/storage-targets/",
            {"name": "s", "endpoint": "e:1", "bucket": "cairn"},
        )
    ],
    "audit.view": [("get", lambda f: "/api/v1/audit-events/", None)],
    "user.manage": [("get", lambda f: "/api/v1/users/", None)],
    "report.view": [
        ("get", lambda f: "/api/v1/reports/compliance/?from=2026-01-01&to=2026-01-02", None),
        (
            "get",
            lambda f: "/api/v1/reports/compliance/?from=2026-01-01&to=2026-01-02&format=csv",
            None,
        ),
        ("post", lambda f: "/api/v1/reports/verify/", {}),
        ("get", lambda f: "/api/v1/reports/schedules/", None),
        ("get", lambda f: "/api/v1/reports/past/", None),
    ],
    "hold.view": [
        ("get", lambda f: "/api/v1/holds/?state=active", None),
        ("get", lambda f: "/api/v1/holds/export/", None),
        ("get", lambda f: "/api/v1/offboardings/", None),
    ],
    "hold.manage": [
        (
            "post",
            lambda f: "/api/v1/holds/",
            lambda f: {"scope": "device", "device": str(_dev(f)), "case_name": "C", "reason": "r"},
        ),
    ],
    "report.manage": [
        (
            "post",
            lambda f: "/api/v1/reports/schedules/",
            {"name": "S", "frequency": "weekly", "recipients": ["a@example.com"]},
        )
    ],
}


def _data(data, fleet):
    return (data(fleet) if callable(data) else data) or {}


def _requests(matrix):
    """Every request of a matrix; revocation last (it changes the fleet)."""
    ordered = sorted(matrix, key=lambda cap: (cap == "device.revoke", cap))
    return [(cap, *req) for cap in ordered for req in matrix[cap]]


def test_every_capability_is_covered_by_both_matrices():
    assert set(UI) == set(CAPABILITIES) == set(API)


@pytest.mark.parametrize("role", list(ROLE_OF))
def test_ui(role, ui, small_fleet):
    client = ui(role)
    for capability, method, url, data in _requests(UI):
        allowed = ROLE_OF[role] in CAPABILITIES[capability]
        r = getattr(client, method)(url(small_fleet), _data(data, small_fleet))
        if allowed:
            assert r.status_code in (200, 302), (role, url, r.status_code)
        else:
            assert r.status_code == 403, (role, url, r.status_code)


@pytest.mark.parametrize("role", list(ROLE_OF))
def test_api(role, api, small_fleet):
    client = api(role)
    for capability, method, url, data in _requests(API):
        allowed = ROLE_OF[role] in CAPABILITIES[capability]
        r = getattr(client, method)(url(small_fleet), _data(data, small_fleet), format="json")
        if allowed:
            assert r.status_code in (200, 201, 202, 400), (
                role,
                url,
                r.status_code,
                r.content[:300],
            )
        else:
            assert r.status_code == 403, (role, url, r.status_code)


def test_roles_are_the_three_of_the_issue():
    assert ROLES == ("Admin", "Operator", "Auditor")


def test_pages_show_only_the_actions_a_role_may_take(ui, small_fleet):
    url = f"/devices/{small_fleet.devices[0].pk}/"
    operator = ui("operator").get(url).content.decode()
    assert "Back up now" in operator and "Restore…" in operator and ">Revoke<" not in operator
    auditor = ui("auditor").get(url).content.decode()
    assert "Back up now" not in auditor
    admin = ui("admin").get(url).content.decode()
    assert ">Revoke<" in admin
    nav = ui("operator").get("/").content.decode()
    assert "Audit log" not in nav and "Enrollment" not in nav
    assert "Audit log" in ui("auditor").get("/").content.decode()


def test_login_is_required_everywhere(client, small_fleet):
    for _, method, url, data in _requests(UI):
        r = getattr(client, method)(url(small_fleet), _data(data, small_fleet))
        assert r.status_code == 302 and r.url.startswith("/login/"), url
