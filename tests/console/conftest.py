"""Fixtures of the console tests: one user per role, signed-in clients for the
UI and the API, and a small fleet built through the service functions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from console.accounts.roles import ADMIN, AUDITOR, OPERATOR, set_role
from console.audit.services import SYSTEM
from console.fleet import services as fleet
from console.policies import services as policies
from console.policies import spec as specs

PASSWORD = "Cairn-test-password-1"
ROLE_USERS = {"admin": ADMIN, "operator": OPERATOR, "auditor": AUDITOR, "nobody": None}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The test users' passwords need no real key stretching."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def users(db, django_user_model):
    out = {}
    for name, role in ROLE_USERS.items():
        user = django_user_model.objects.create_user(name, password=PASSWORD)
        set_role(user, role)
        out[name] = user
    return out


@pytest.fixture
def ui(client, users):
    """ui("operator") -> a Django test client signed in as that role's user."""
    from django.test import Client

    def make(name: str):
        c = Client()
        c.force_login(users[name])
        return c

    return make


@pytest.fixture
def api(users):
    """api("auditor") -> a DRF client authenticated with that user's API token."""

    def make(name: str):
        c = APIClient()
        token, _ = Token.objects.get_or_create(user=users[name])
        c.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return c

    return make


@dataclass
class Fleet:
    group: object
    other_group: object
    policy: object
    devices: list
    token_plaintext: str


def enroll(plaintext: str, n: int, prefix: str = "pc", os: str = "windows") -> list:
    return [fleet.enroll_device(plaintext, hostname=f"{prefix}-{i:03d}", os=os) for i in range(n)]


@pytest.fixture
def small_fleet(db) -> Fleet:
    group = fleet.create_group(SYSTEM, "Finance")
    other = fleet.create_group(SYSTEM, "Engineering")
    _, plaintext = fleet.create_enrollment_token(SYSTEM, "t", group, max_uses=100)
    devices = enroll(plaintext, 3)
    policy = policies.create_policy(SYSTEM, "Standard", specs.default_spec())
    policies.assign_policy(SYSTEM, policy, group, 100)
    for d in devices:
        d.refresh_from_db()
    return Fleet(group, other, policy, devices, plaintext)
