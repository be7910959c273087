"""Legal holds page: list and export (``hold.view``), place and release
(``hold.manage``); the rules and the audit live in console/holds/services.py."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from console.accounts.roles import check, require
from console.audit.services import Actor
from console.fleet.models import Device
from console.holds import services
from console.holds.models import LegalHold, Offboarding, Scope


class HoldForm(forms.Form):
    scope = forms.ChoiceField(choices=Scope.choices)
    device = forms.ModelChoiceField(
        queryset=Device.objects.order_by("hostname"),
        required=False,
        help_text="For a device or snapshot hold",
    )
    owner = forms.CharField(max_length=255, required=False, help_text="For a user hold")
    snapshot_id = forms.CharField(max_length=128, required=False, help_text="For a snapshot hold")
    case_name = forms.CharField(max_length=services.MAX_CASE)
    reason = forms.CharField(max_length=services.MAX_TEXT, widget=forms.Textarea(attrs={"rows": 3}))


class ReleaseForm(forms.Form):
    reason = forms.CharField(max_length=services.MAX_TEXT)


def _holds(request):
    qs = LegalHold.objects.select_related("device", "created_by", "released_by")
    state = request.GET.get("state", "")
    if state == "active":
        qs = qs.filter(released_at__isnull=True)
    elif state == "released":
        qs = qs.filter(released_at__isnull=False)
    return qs.order_by("-created_at", "-id"), state


@require("hold.view")
def hold_list(request):
    form = HoldForm()
    if request.method == "POST":
        check(request.user, "hold.manage")
        form = HoldForm(request.POST)
        if form.is_valid():
            try:
                hold = services.place(
                    Actor.from_request(request), services.HoldInput(**form.cleaned_data)
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(request, f"Hold placed: {hold}.")
                return redirect("hold-list")
    holds, state = _holds(request)
    return render(
        request,
        "dashboard/holds.html",
        {
            "section": "holds",
            "holds": holds[:500],
            "state": state,
            "form": form,
            "offboardings": Offboarding.objects.order_by("-deleted_at")[:50],
        },
    )


@require_POST
@require("hold.manage")
def hold_release(request, pk: int):
    hold = get_object_or_404(LegalHold, pk=pk)
    form = ReleaseForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a reason for releasing the hold.")
        return redirect("hold-list")
    try:
        services.release(Actor.from_request(request), hold, form.cleaned_data["reason"])
    except ValidationError as exc:
        messages.error(request, " ".join(sum(exc.message_dict.values(), [])))
    else:
        messages.success(request, f"Hold released: {hold}.")
    return redirect("hold-list")


@require("hold.view")
def hold_export(request):
    holds, _ = _holds(request)
    body = services.export_csv(Actor.from_request(request), holds)
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="cairn-legal-holds-{stamp}.csv"'
    return response
