"""The installation's first Admin (``manage.py init_installation``): from
``CAIRN_ADMIN_USERNAME`` / ``CAIRN_ADMIN_PASSWORD`` (/ ``CAIRN_ADMIN_EMAIL``)
or a name and a password typed at the command. Only while no Admin exists:
after that, Admins manage users in the console. The password passes the
same validators as any other; the creation is audited (user.create, by the
system)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from console.accounts.roles import ADMIN
from console.accounts.services import save_user
from console.audit.services import SYSTEM


def admin_exists() -> bool:
    User = get_user_model()
    return (
        User.objects.filter(is_superuser=True, is_active=True).exists()
        or Group.objects.filter(name=ADMIN, user__is_active=True).exists()
    )


def create_first_admin(username: str, password: str, email: str = ""):
    """The first Admin, or None when an Admin exists already (nothing changes).
    A bad name or password raises django's ValidationError with the reasons."""
    if admin_exists():
        return None
    return save_user(SYSTEM, username, ADMIN, email=email, password=password)
