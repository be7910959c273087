"""User and role changes (Admin only), audited like everything else.

A password change revokes the user's API token, and Django's session hash
signs the user's other sessions out on their next request. Deactivating a
user refuses every sign-in, session and token. Only a superuser may change a
superuser: an Admin who could reset one's password would become one (and
superusers are the only accounts the development admin lets in).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token

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
    if user is not None:
        _check_may_manage(actor, user)
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
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        # Another request took the name between the check above and this
        # write (two admins, or a fuzzer's parallel requests): the same
        # answer as the check's, not a 500.
        raise ValidationError(
            {"username": [f"A user named {username!r} already exists."]}
        ) from None
    set_role(user, role or None)
    after = {"username": user.username, "email": user.email, "role": role or None}
    if password:
        after["password"] = "changed"
        if before is not None:
            after["api_token"] = "revoked" if _delete_tokens(user) else "none"
    record(actor, "user.update" if before else "user.create", user, before=before, after=after)
    return user


def _check_may_manage(actor: Actor, user) -> None:
    if user.is_superuser and not (actor.user is not None and actor.user.is_superuser):
        raise PermissionDenied("Only a superuser may change a superuser.")


def _delete_tokens(user) -> bool:
    deleted, _ = Token.objects.filter(user=user).delete()
    return bool(deleted)


@transaction.atomic
def issue_api_token(actor: Actor, user) -> str:
    """A new API token for the user, replacing the old one; the key is
    returned here, once, and never shown again."""
    _delete_tokens(user)
    token = Token.objects.create(user=user)
    record(actor, "user.token_issue", user)
    return token.key


@transaction.atomic
def revoke_api_token(actor: Actor, user) -> bool:
    _check_may_manage(actor, user)
    revoked = _delete_tokens(user)
    record(actor, "user.token_revoke", user, after={"revoked": revoked})
    return revoked


@transaction.atomic
def set_user_active(actor: Actor, user, active: bool):
    """Deactivate (no sign-in, no session, no token) or reactivate a user."""
    _check_may_manage(actor, user)
    if not active and actor.user is not None and user.pk == actor.user.pk:
        raise ValidationError({"is_active": ["You cannot deactivate yourself."]})
    before = {"is_active": user.is_active}
    user.is_active = active
    user.save(update_fields=["is_active"])
    after = {"is_active": active}
    if not active:
        after["api_token"] = "revoked" if _delete_tokens(user) else "none"
    record(
        actor, "user.activate" if active else "user.deactivate", user, before=before, after=after
    )
    return user
