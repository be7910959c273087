"""User and role changes (Admin only), audited like everything else."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from console.accounts.roles import ROLES, role_of, set_role
from console.audit.services import Actor, record


@transaction.atomic
def save_user(
    actor: Actor,
    username: str,
    role: str | None,
    email: str = "",
    password: str = "",
    user=None,
):
    User = get_user_model()
    username = (username or "").strip()
    errors: dict[str, list[str]] = {}
    if not username:
        errors["username"] = ["This field is required."]
    elif (
        User.objects.filter(username__iexact=username)
        .exclude(pk=getattr(user, "pk", None))
        .exists()
    ):
        errors["username"] = [f"A user named {username!r} already exists."]
    if role and role not in ROLES:
        errors["role"] = ["Unknown role."]
    if user is None and not password:
        errors["password"] = ["A new user needs a password."]
    if password:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            errors["password"] = list(exc.messages)
    if (
        user is not None
        and actor.user is not None
        and user.pk == actor.user.pk
        and role != role_of(user)
    ):
        errors["role"] = ["You cannot change your own role."]
    if errors:
        raise ValidationError(errors)
    before = (
        None
        if user is None
        else {"username": user.username, "email": user.email, "role": role_of(user)}
    )
    user = user or User(username=username)
    user.username, user.email = username, email or ""
    if password:
        user.set_password(password)
    user.save()
    set_role(user, role or None)
    after = {"username": user.username, "email": user.email, "role": role or None}
    if password:
        after["password"] = "changed"
    record(actor, "user.update" if before else "user.create", user, before=before, after=after)
    return user
