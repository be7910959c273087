"""Device groups."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch
from django.shortcuts import get_object_or_404, redirect, render

from console.accounts.roles import can, require
from console.dashboard.forms import (
    GroupForm,
)
from console.dashboard.views.common import (
    PAGE_SIZE,
    actor,
    errors_onto,
)
from console.fleet import services as fleet
from console.fleet.models import Device, DeviceGroup
from console.policies.models import PolicyAssignment


@require("view")
def group_list(request):
    form = GroupForm(request.POST or None)
    if request.method == "POST":
        if not can(request.user, "group.manage"):
            raise PermissionDenied
        if form.is_valid():
            with errors_onto(form):
                group = fleet.create_group(
                    actor(request), form.cleaned_data["name"], form.cleaned_data["description"]
                )
                messages.success(request, f"Group {group.name} created.")
                return redirect("group-list")
    groups = DeviceGroup.objects.annotate(
        n_devices=Count("devices", distinct=True)
    ).prefetch_related(Prefetch("assignments", PolicyAssignment.objects.select_related("policy")))
    return render(
        request, "dashboard/groups.html", {"section": "groups", "groups": groups, "form": form}
    )


@require("view")
def group_detail(request, pk):
    group = get_object_or_404(DeviceGroup, pk=pk)
    form = GroupForm(
        request.POST or None, initial={"name": group.name, "description": group.description}
    )
    if request.method == "POST":
        if not can(request.user, "group.manage"):
            raise PermissionDenied
        if request.POST.get("action") == "delete":
            fleet.delete_group(actor(request), group)
            messages.success(request, f"Group {group.name} deleted.")
            return redirect("group-list")
        if request.POST.get("action") == "add_devices":
            names = [
                n.strip()
                for n in request.POST.get("hostnames", "").replace(",", "\n").splitlines()
                if n.strip()
            ]
            devices = Device.objects.filter(hostname__in=names, revoked=False)
            added = fleet.add_devices_to_group(actor(request), group, devices)
            messages.success(request, f"{added} device(s) added to {group.name}.")
            return redirect("group-detail", pk=pk)
        if form.is_valid():
            with errors_onto(form):
                fleet.update_group(
                    actor(request),
                    group,
                    form.cleaned_data["name"],
                    form.cleaned_data["description"],
                )
                messages.success(request, "Group saved.")
                return redirect("group-detail", pk=pk)
    assignments = group.assignments.select_related("policy", "policy__current_revision")
    devices = Paginator(group.devices.order_by("hostname"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "dashboard/group_detail.html",
        {
            "section": "groups",
            "group": group,
            "form": form,
            "assignments": assignments,
            "page": devices,
        },
    )
