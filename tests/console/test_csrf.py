"""Cross-site request forgery: a page on another site that makes a signed-in
admin's browser POST to the console changes nothing. Django's test client
skips CSRF checks unless asked, so these clients enforce them as a browser
session would meet them."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from console.jobs.models import Command, CommandKind

pytestmark = pytest.mark.django_db


def _backups(device) -> int:
    return Command.objects.filter(device=device, kind=CommandKind.BACKUP).count()


def test_dashboard_action_without_the_csrf_token_is_refused(users, small_fleet):
    device = small_fleet.devices[0]
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(users["admin"])
    before = _backups(device)

    forged = browser.post(f"/devices/{device.pk}/backup/", {})
    assert forged.status_code == 403
    assert _backups(device) == before

    # The same action with the token the page hands out goes through, so the
    # refusal above is the CSRF check and not something else.
    browser.get(f"/devices/{device.pk}/")
    token = browser.cookies["csrftoken"].value
    genuine = browser.post(f"/devices/{device.pk}/backup/", {"csrfmiddlewaretoken": token})
    assert genuine.status_code in (200, 302)
    assert _backups(device) == before + 1


def test_api_call_riding_on_the_session_cookie_needs_the_csrf_header(users, small_fleet):
    device = small_fleet.devices[0]
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(users["admin"])
    before = _backups(device)

    forged = browser.post(f"/api/v1/devices/{device.pk}/backup/")
    assert forged.status_code == 403
    assert "CSRF" in forged.json()["detail"]
    assert _backups(device) == before

    browser.get("/")  # the dashboard sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    genuine = browser.post(f"/api/v1/devices/{device.pk}/backup/", HTTP_X_CSRFTOKEN=token)
    assert genuine.status_code in (200, 201, 202)
    assert _backups(device) == before + 1
