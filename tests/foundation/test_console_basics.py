"""Login is required everywhere; the health probe reports each service."""

import pytest

pytestmark = pytest.mark.django_db


def test_home_redirects_anonymous_users_to_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_login_page_renders(client):
    response = client.get("/login/")
    assert response.status_code == 200 and b"Sign in to Cairn" in response.content


def test_health_reports_database(client):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body["ok"] is True
    assert body["checks"]["database"]["ok"] is True


def test_health_is_503_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
