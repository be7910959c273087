"""Storage targets and the organisation key."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console.accounts.roles import require
from console.dashboard.forms import (
    StorageTargetForm,
)
from console.dashboard.views.common import (
    actor,
    errors_onto,
)
from console.storage import services as storage
from console.storage.models import StorageTarget


@require("storage.view")
def storage_page(request):
    return render(
        request,
        "dashboard/storage.html",
        {
            "section": "storage",
            "targets": StorageTarget.objects.all(),
            "org_key": storage.org_key_status(),
            "used": storage.storage_used(),
        },
    )


@require("storage.manage")
def storage_edit(request, pk=None):
    target = get_object_or_404(StorageTarget, pk=pk) if pk else None
    initial = {}
    if target:
        initial = {f: getattr(target, f) for f in storage.PUBLIC_FIELDS}
    form = StorageTargetForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if request.POST.get("action") == "delete" and target:
            storage.delete_storage_target(actor(request), target)
            messages.success(request, f"Storage target {target.name} deleted.")
            return redirect("storage")
        if form.is_valid():
            with errors_onto(form):
                saved = storage.save_storage_target(actor(request), form.cleaned_data, target)
                messages.success(request, f"Storage target {saved.name} saved.")
                return redirect("storage")
    return render(
        request,
        "dashboard/storage_form.html",
        {"section": "storage", "form": form, "target": target},
    )


@require_POST
@require("storage.manage")
def org_key_record(request):
    storage.record_org_key(actor(request))
    messages.success(request, "Organisation key fingerprint recorded.")
    return redirect("storage")
