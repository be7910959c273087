"""Users, their roles, API tokens and sign-in lockout."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console.accounts import lockout
from console.accounts import services as accounts
from console.accounts.roles import ROLE_DESCRIPTIONS, ROLES, require, role_of
from console.accounts.services import save_user
from console.dashboard.forms import (
    UserForm,
)
from console.dashboard.views.common import (
    actor,
    errors_onto,
)


@require("user.manage")
def user_list(request):
    User = get_user_model()
    users = list(User.objects.order_by("username").prefetch_related("groups"))
    return render(
        request,
        "dashboard/users.html",
        {
            "section": "users",
            "users": [(u, role_of(u)) for u in users],
            "roles": [(r, ROLE_DESCRIPTIONS[r]) for r in ROLES],
        },
    )


@require("user.manage")
def user_edit(request, pk=None):
    User = get_user_model()
    user = get_object_or_404(User, pk=pk) if pk else None
    initial = (
        {"username": user.username, "email": user.email, "role": role_of(user) or ""}
        if user
        else {}
    )
    form = UserForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        with errors_onto(form):
            saved = save_user(
                actor(request), d["username"], d["role"] or None, d["email"], d["password"], user
            )
            if saved.pk == request.user.pk:
                # A password change signs out the user's other sessions, not this one.
                update_session_auth_hash(request, saved)
            messages.success(request, f"User {d['username']} saved.")
            return redirect("user-list")
    return render(
        request, "dashboard/user_form.html", {"section": "users", "form": form, "edited": user}
    )


@require_POST
@require("user.manage")
def user_revoke_token(request, pk):
    user = get_object_or_404(get_user_model(), pk=pk)
    revoked = accounts.revoke_api_token(actor(request), user)
    messages.success(
        request, f"API token of {user.username} revoked." if revoked else "No API token to revoke."
    )
    return redirect("user-edit", pk=pk)


@require_POST
@require("user.manage")
def user_set_active(request, pk):
    user = get_object_or_404(get_user_model(), pk=pk)
    active = request.POST.get("active") == "1"
    try:
        accounts.set_user_active(actor(request), user, active)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{user.username} {'reactivated' if active else 'deactivated'}.")
    return redirect("user-edit", pk=pk)


@require_POST
@require("user.manage")
def user_unlock(request, pk):
    user = get_object_or_404(get_user_model(), pk=pk)
    lockout.unlock_user(actor(request), user)
    messages.success(request, f"Sign-in of {user.username} unlocked.")
    return redirect("user-edit", pk=pk)
