"""Login is required everywhere; the health probe reports each service."""

import pytest

pytestmark = pytest.mark.django_db


def test_home_redirects_anonymous_users_to_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_login_page_renders(client):
    response = client.get("/login/")
    assert response.status_code == 200 and b"Sign in to Cairn" in response.content


def test_health_reports_database_to_signed_in_users(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("ops"))
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body["ok"] is True
    assert body["checks"]["database"]["ok"] is True


def test_health_tells_anonymous_callers_only_the_verdict(client, settings):
    # Issue 10: no environment, database engine or error text to strangers.
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json() == {"ok": False}
    assert b"production" not in response.content and b"development" not in response.content
    assert b"postgresql" not in response.content and b"Error" not in response.content


def test_health_is_503_when_redis_is_unreachable(client, settings, django_user_model):
    client.force_login(django_user_model.objects.create_user("ops"))
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
