"""Enrollment tokens."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from console.accounts.roles import can, require
from console.core import pki
from console.dashboard.forms import (
    TokenForm,
)
from console.dashboard.views.common import (
    actor,
    errors_onto,
)
from console.fleet import services as fleet
from console.fleet.models import EnrollmentToken
from console.gateway import conf as gateway_conf


@never_cache  # the page shows a new token's secret once
@require("token.view")
def token_list(request):
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST":
        if not can(request.user, "token.manage"):
            raise PermissionDenied
        if form.is_valid():
            d = form.cleaned_data
            with errors_onto(form):
                token, plaintext = fleet.create_enrollment_token(
                    actor(request),
                    d["name"],
                    d["group"],
                    expires_in_hours=d["expires_in_hours"],
                    max_uses=d["max_uses"],
                )
                created = {"token": token, "plaintext": plaintext}
                form = TokenForm()
    tokens = EnrollmentToken.objects.select_related("group", "created_by").annotate(
        n_devices=Count("device")
    )
    return render(
        request,
        "dashboard/tokens.html",
        {
            "section": "enrollment",
            "tokens": tokens,
            "form": form,
            "created": created,
            "now": timezone.now(),
            "enroll_address": gateway_conf.public_enroll_address(),
            "ca_fingerprint": _ca_fingerprint(),
        },
    )


def _ca_fingerprint() -> str:
    """The console CA's SHA-256 fingerprint, which agents pin at enrollment."""
    try:
        return pki.ensure_ca(create=False).fingerprint
    except (pki.PKIError, OSError):
        return ""


@require_POST
@require("token.manage")
def token_revoke(request, pk):
    token = get_object_or_404(EnrollmentToken, pk=pk)
    fleet.revoke_enrollment_token(actor(request), token)
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("token-list")
