"""Issue 10, console sign-in and admin: brute force is locked out per account
and per address (login page and API token endpoint) without flooding the
audit log; the Django admin changes nothing and lists no token; tokens die
with a password change, a revocation or a deactivation; an Admin cannot take
over a superuser. Real Postgres, real HTTP requests through Django's stack."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.db.models import F
from django.test import Client
from django.urls import clear_url_caches, resolve
from django.urls.exceptions import Resolver404
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

import console.urls
from console.audit.models import AuditEvent
from console.audit.services import SYSTEM
from console.fleet import services as fleet
from console.fleet.models import Device, EnrollmentToken
from console.jobs.models import Command
from tests.console.conftest import PASSWORD

pytestmark = pytest.mark.django_db

WRONG = "not-the-password"
LOCKED_TEXT = "Too many failed sign-ins; try again in"


def _audit_rows(*names: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action__startswith="auth.", target_repr__in=names))


def _window_passes(settings) -> None:
    """Time moves past the cool-off: every counted failure becomes older than it."""
    AccessAttempt.objects.update(
        attempt_time=F("attempt_time") - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )


def _token_refused(client: APIClient) -> bool:
    r = client.get("/api/v1/me/")
    # 403 rather than 401: session auth comes first, so DRF sends no challenge
    return r.status_code in (401, 403) and r.json()["detail"] in (
        "Invalid token.",
        "User inactive or deleted.",
    )


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- lockout: login page ------------------------------------------------------------------------


def test_login_page_locks_out_after_failures_and_audits_a_bounded_number(users, settings):
    c = Client()
    for _ in range(60):
        r = c.post("/login/", {"username": "operator", "password": WRONG})
        assert r.status_code in (200, 429)
    r = c.post("/login/", {"username": "operator", "password": PASSWORD})
    assert r.status_code == 429
    assert LOCKED_TEXT in r.content.decode() and "15 minutes" in r.content.decode()
    assert not _signed_in(c)

    rows = _audit_rows("operator")
    # one failure row for the (user, address) pair and one lockout row, not 61
    assert sorted(e.action for e in rows) == ["auth.locked_out", "auth.login_failed"]
    locked = next(e for e in rows if e.action == "auth.locked_out")
    assert locked.after["failures"] == settings.AXES_FAILURE_LIMIT
    assert locked.source_address == "127.0.0.1"
    assert not AccessAttempt.objects.filter(post_data__contains=WRONG).exists()  # masked

    _window_passes(settings)
    r = c.post("/login/", {"username": "operator", "password": PASSWORD})
    assert r.status_code == 302 and _signed_in(c)


def test_a_few_typos_then_the_right_password_signs_in(users):
    c = Client()
    for _ in range(3):
        assert c.post("/login/", {"username": "auditor", "password": WRONG}).status_code == 200
    assert c.post("/login/", {"username": "auditor", "password": PASSWORD}).status_code == 302
    assert _signed_in(c)


# --- lockout: API token endpoint ----------------------------------------------------------------


def test_token_endpoint_locks_out_after_failures(users, settings):
    c = APIClient()
    for _ in range(60):
        r = c.post("/api/v1/auth/token/", {"username": "admin", "password": WRONG})
        assert r.status_code in (400, 429)
    r = c.post("/api/v1/auth/token/", {"username": "admin", "password": PASSWORD})
    assert r.status_code == 429
    assert r.json()["detail"].startswith(LOCKED_TEXT) and "token" not in r.json()
    assert not Token.objects.filter(user=users["admin"]).exists()
    assert len(_audit_rows("admin")) == 2

    _window_passes(settings)
    r = c.post("/api/v1/auth/token/", {"username": "admin", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["token"]


def test_one_address_guessing_many_accounts_is_locked_out_by_address(users, settings):
    attacker = APIClient(REMOTE_ADDR="198.51.100.7")
    for i in range(30):
        attacker.post("/api/v1/auth/token/", {"username": f"guess{i}", "password": WRONG})
    # the attacker's address is locked even for a real account's right password ...
    r = attacker.post("/api/v1/auth/token/", {"username": "operator", "password": PASSWORD})
    assert r.status_code == 429
    # ... the account itself is not: its owner elsewhere signs in
    other = APIClient(REMOTE_ADDR="203.0.113.20")
    assert (
        other.post(
            "/api/v1/auth/token/", {"username": "operator", "password": PASSWORD}
        ).status_code
        == 200
    )
    # bounded: at most one failure row per pair until the lock, one lockout row
    rows = AuditEvent.objects.filter(source_address="198.51.100.7", action__startswith="auth.")
    assert rows.filter(action="auth.locked_out").count() == 1
    assert rows.count() <= settings.AXES_FAILURE_LIMIT + 1


def test_one_account_guessed_from_many_addresses_is_locked_out_by_account(users):
    for i in range(30):
        Client(REMOTE_ADDR=f"10.9.0.{i + 1}").post(
            "/login/", {"username": "admin", "password": WRONG}
        )
    c = Client(REMOTE_ADDR="10.9.1.1")
    r = c.post("/login/", {"username": "admin", "password": PASSWORD})
    assert r.status_code == 429 and not _signed_in(c)


# --- unlock -------------------------------------------------------------------------------------


def _lock(username: str, address: str = "127.0.0.1") -> None:
    c = APIClient(REMOTE_ADDR=address)
    for _ in range(12):
        c.post("/api/v1/auth/token/", {"username": username, "password": WRONG})


def test_admin_unlocks_a_user_through_the_api_and_it_is_audited(users, api):
    _lock("operator", "192.0.2.1")
    c = APIClient(REMOTE_ADDR="192.0.2.2")
    body = {"username": "operator", "password": PASSWORD}
    assert c.post("/api/v1/auth/token/", body).status_code == 429

    assert api("auditor").post(f"/api/v1/users/{users['operator'].pk}/unlock/").status_code == 403
    assert api("operator").post(f"/api/v1/users/{users['operator'].pk}/unlock/").status_code == 403
    r = api("admin").post(f"/api/v1/users/{users['operator'].pk}/unlock/")
    assert r.status_code == 200 and r.json()["cleared_failures"] >= 1
    event = AuditEvent.objects.get(action="user.unlock")
    assert event.actor == users["admin"] and event.target_id == str(users["operator"].pk)
    assert c.post("/api/v1/auth/token/", body).status_code == 200


def test_admin_unlocks_an_address(users, api):
    for i in range(12):
        APIClient(REMOTE_ADDR="192.0.2.50").post(
            "/api/v1/auth/token/", {"username": f"x{i}", "password": WRONG}
        )
    c = APIClient(REMOTE_ADDR="192.0.2.50")
    body = {"username": "auditor", "password": PASSWORD}
    assert c.post("/api/v1/auth/token/", body).status_code == 429
    bad = api("admin").post("/api/v1/users/unlock-address/", {"address": "not an ip"})
    assert bad.status_code == 400 and "address" in bad.json()
    r = api("admin").post("/api/v1/users/unlock-address/", {"address": "192.0.2.50"})
    assert r.status_code == 200
    assert AuditEvent.objects.filter(action="auth.unlock_address", target_id="192.0.2.50").exists()
    assert c.post("/api/v1/auth/token/", body).status_code == 200


# --- Django admin -------------------------------------------------------------------------------


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password=PASSWORD)


def test_development_admin_is_read_only_and_lists_no_token(superuser, users, small_fleet):
    Token.objects.create(user=users["admin"])
    c = Client()
    c.force_login(superuser)
    index = c.get("/admin/")
    assert index.status_code == 200 and "tokenproxy" not in index.content.decode().lower()
    assert c.get("/admin/authtoken/tokenproxy/").status_code == 404

    device = small_fleet.devices[0]
    assert c.get(f"/admin/fleet/device/{device.pk}/change/").status_code == 200  # browse: yes
    r = c.post(f"/admin/fleet/device/{device.pk}/delete/", {"post": "yes"})
    assert r.status_code == 403 and Device.objects.filter(pk=device.pk).exists()
    r = c.post(
        "/admin/fleet/device/",
        {"action": "delete_selected", "_selected_action": [device.pk], "post": "yes"},
    )
    assert Device.objects.filter(pk=device.pk).exists()

    token = EnrollmentToken.objects.first()
    fleet.revoke_enrollment_token(SYSTEM, token)
    r = c.post(f"/admin/fleet/enrollmenttoken/{token.pk}/change/", {"revoked_at": ""})
    assert r.status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is not None

    n_users, n_commands = users["admin"].__class__.objects.count(), Command.objects.count()
    assert c.post("/admin/auth/user/add/", {"username": "x"}).status_code == 403
    assert c.post("/admin/jobs/command/add/", {"kind": "restore"}).status_code == 403
    r = c.post(
        f"/admin/auth/user/{superuser.pk}/password/",
        {"password1": "New-pass-9876", "password2": "New-pass-9876"},
    )
    assert r.status_code == 403
    assert users["admin"].__class__.objects.count() == n_users
    assert Command.objects.count() == n_commands


def test_production_does_not_mount_the_admin(settings):
    settings.PRODUCTION = True
    try:
        urls = importlib.reload(console.urls)
        with pytest.raises(Resolver404):
            resolve("/admin/", urlconf=urls)
        assert resolve("/login/", urlconf=urls).url_name == "login"
    finally:
        settings.PRODUCTION = False
        importlib.reload(console.urls)
        clear_url_caches()
    assert resolve("/admin/").app_name == "admin"


# --- superusers, tokens, deactivation ----------------------------------------------------------


def test_admin_cannot_reset_a_superusers_password_or_disable_them(superuser, users, api):
    c = api("admin")
    r = c.patch(f"/api/v1/users/{superuser.pk}/", {"password": "Taken-over-4321"})
    assert r.status_code == 403
    superuser.refresh_from_db()
    assert superuser.check_password(PASSWORD)
    assert c.post(f"/api/v1/users/{superuser.pk}/deactivate/").status_code == 403
    assert c.post(f"/api/v1/users/{superuser.pk}/revoke-token/").status_code == 403
    superuser.refresh_from_db()
    assert superuser.is_active
    # a superuser may
    root = APIClient()
    root.force_authenticate(superuser)
    r = root.patch(f"/api/v1/users/{superuser.pk}/", {"password": "Rotated-pass-4321"})
    assert r.status_code == 200


def test_password_change_revokes_api_token_and_other_sessions(users, api):
    victim = APIClient()
    key = victim.post("/api/v1/auth/token/", {"username": "operator", "password": PASSWORD}).json()[
        "token"
    ]
    victim.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert victim.get("/api/v1/me/").status_code == 200
    browser = Client()
    assert (
        browser.post("/login/", {"username": "operator", "password": PASSWORD}).status_code == 302
    )
    assert browser.get("/").status_code == 200

    r = api("admin").patch(
        f"/api/v1/users/{users['operator'].pk}/", {"password": "Fresh-pass-2468"}
    )
    assert r.status_code == 200
    assert _token_refused(victim)
    assert browser.get("/").status_code == 302  # back to the sign-in page
    event = AuditEvent.objects.filter(action="user.update").latest("id")
    assert event.after["password"] == "changed" and event.after["api_token"] == "revoked"


def test_token_is_shown_once_and_a_new_one_replaces_it(users):
    c = APIClient()
    body = {"username": "auditor", "password": PASSWORD}
    first = c.post("/api/v1/auth/token/", body).json()["token"]
    second = c.post("/api/v1/auth/token/", body).json()["token"]
    assert first != second
    old = APIClient(HTTP_AUTHORIZATION=f"Token {first}")
    assert _token_refused(old)
    assert AuditEvent.objects.filter(action="user.token_issue").count() == 2
    # the user list shows no key
    assert "token" not in str(APIClient().get("/api/v1/users/").content)


def test_admin_revokes_a_users_token(users, api):
    victim = api("operator")
    assert victim.get("/api/v1/me/").status_code == 200
    assert (
        api("auditor").post(f"/api/v1/users/{users['operator'].pk}/revoke-token/").status_code
        == 403
    )
    r = api("admin").post(f"/api/v1/users/{users['operator'].pk}/revoke-token/")
    assert r.status_code == 200
    assert _token_refused(victim)
    event = AuditEvent.objects.get(action="user.token_revoke")
    assert event.after == {"revoked": True} and event.actor == users["admin"]


def test_deactivated_user_cannot_sign_in_and_tokens_and_sessions_die(users, api):
    victim = api("operator")
    browser = Client()
    assert (
        browser.post("/login/", {"username": "operator", "password": PASSWORD}).status_code == 302
    )
    admin = api("admin")

    assert admin.post(f"/api/v1/users/{users['admin'].pk}/deactivate/").status_code == 400  # self
    r = admin.post(f"/api/v1/users/{users['operator'].pk}/deactivate/")
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert _token_refused(victim)
    assert browser.get("/").status_code == 302
    r = Client().post("/login/", {"username": "operator", "password": PASSWORD})
    assert r.status_code == 200  # the form again, not signed in
    r = APIClient().post("/api/v1/auth/token/", {"username": "operator", "password": PASSWORD})
    assert r.status_code == 400
    assert AuditEvent.objects.filter(action="user.deactivate", actor=users["admin"]).exists()

    assert admin.post(f"/api/v1/users/{users['operator'].pk}/activate/").status_code == 200
    r = Client().post("/login/", {"username": "operator", "password": PASSWORD})
    assert r.status_code == 302
    assert AuditEvent.objects.filter(action="user.activate").exists()


# --- the same from the dashboard ----------------------------------------------------------------


def test_dashboard_user_actions_are_audited_and_role_checked(users, ui, api, superuser):
    target = users["operator"]
    victim = api("operator")
    _lock("operator")
    assert ui("operator").post(f"/users/{target.pk}/active/", {"active": "0"}).status_code == 403
    admin = ui("admin")

    assert admin.post(f"/users/{target.pk}/revoke-token/").status_code == 302
    assert _token_refused(victim)
    assert admin.post(f"/users/{target.pk}/unlock/").status_code == 302
    assert not AccessAttempt.objects.filter(username="operator").exists()
    assert admin.post(f"/users/{target.pk}/active/", {"active": "0"}).status_code == 302
    target.refresh_from_db()
    assert not target.is_active
    done = AuditEvent.objects.filter(target_id=str(target.pk), via=AuditEvent.Via.UI)
    assert {"user.token_revoke", "user.unlock", "user.deactivate"} <= set(
        done.values_list("action", flat=True)
    )
    # an Admin cannot take over a superuser from the page either
    r = admin.post(
        f"/users/{superuser.pk}/",
        {"username": "root", "role": "Admin", "email": "", "password": "Taken-over-4321"},
    )
    assert r.status_code == 403
    superuser.refresh_from_db()
    assert superuser.check_password(PASSWORD)


def test_admin_changing_own_password_on_the_dashboard_stays_signed_in(users):
    me = Client()
    assert me.post("/login/", {"username": "admin", "password": PASSWORD}).status_code == 302
    elsewhere = Client()
    assert elsewhere.post("/login/", {"username": "admin", "password": PASSWORD}).status_code == 302
    r = me.post(
        f"/users/{users['admin'].pk}/",
        {"username": "admin", "role": "Admin", "email": "", "password": "Own-new-pass-1357"},
    )
    assert r.status_code == 302
    assert me.get("/").status_code == 200
    assert elsewhere.get("/").status_code == 302
