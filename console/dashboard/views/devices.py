"""Devices: the filtered list and its CSV export, one device, commands to it, bulk actions."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from console.accounts.roles import BULK_ACTIONS, can, require
from console.alerts import queries as alert_queries
from console.dashboard.forms import (
    RestoreForm,
)
from console.dashboard.views.common import (
    PAGE_SIZE,
    actor,
    csv_response,
    errors_onto,
    iso,
    next_url,
    shown,
)
from console.fleet import filters as device_filters
from console.fleet import services as fleet
from console.fleet.models import OS, Device, DeviceGroup
from console.fleet.queries import STATUS_CHOICES
from console.jobs import bulk, openfiles
from console.jobs import services as jobs
from console.policies import origin
from console.policies import services as policies
from console.policies.models import Policy
from console.restore import onto, takeover
from console.storage import observed, verification


@require("view")
def device_list(request):
    flt = shown(request, device_filters.devices(request.GET))
    qs = flt.qs.select_related("effective_policy")
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    values = flt.values()
    return render(
        request,
        "dashboard/devices.html",
        {
            "section": "devices",
            "page": page,
            "filter": values,
            "status_choices": STATUS_CHOICES,
            "os_choices": OS.choices,
            "groups": DeviceGroup.objects.only("id", "name"),
            "policies": Policy.objects.only("id", "name"),
            "base_qs": values.querystring(),
            "bulk": any(can(request.user, c) for c in BULK_ACTIONS.values()),
            "sort_qs": values.querystring(sort=""),
            "now": timezone.now(),
        },
    )


@require("view")
def device_detail(request, pk):
    device = get_object_or_404(
        Device.objects.select_related("effective_policy", "effective_revision"), pk=pk
    )
    effective = policies.effective_policy_for_device(device)
    runs = list(device.job_runs.select_related("policy_revision").order_by("-started_at")[:25])
    commands = list(device.commands.select_related("created_by").order_by("-created_at")[:10])
    snapshots = list(device.snapshots.order_by("-taken_at")[:20])
    return render(
        request,
        "dashboard/device_detail.html",
        {
            "section": "devices",
            "device": device,
            "effective": effective,
            # which policy and group each effective value comes from
            "settings_origin": origin.section_rows(effective),
            "member_groups": list(device.groups.all()),
            "runs": runs,
            "commands": commands,
            "snapshots": snapshots,
            "all_groups": DeviceGroup.objects.only("id", "name")
            if can(request.user, "device.edit")
            else [],
            "restore_form": _restore_form(snapshots),
            "now": timezone.now(),
            "suspicious_snapshots": observed.suspicious_for(device),
            # issue 15: was the last copy point-in-time, and which files have none
            "open_files": openfiles.point_in_time(
                next((r.stats for r in runs if r.kind == "backup"), {})
            ),
            "unprotected_files": openfiles.unprotected_files(device),
            # issue 17: the environment notice once per device; the last
            # verification and test restore with what they read and found
            "environment_notices": openfiles.environment_notices(
                next((r.stats for r in runs if r.kind == "backup" and r.finished_at), {})
            ),
            "verification": verification.latest(device),
            # open alerts first, then the last few resolved (one query)
            "alerts": alert_queries.for_device(device),
        },
    )


def _restore_form(snapshots, data=None, device=None):
    form = RestoreForm(data)
    form.fields["snapshot_id"].choices = [
        (s.snapshot_id, f"{s.taken_at:%Y-%m-%d %H:%M} · {s.snapshot_id[:12]}") for s in snapshots
    ]
    if device is not None:  # this device (unless revoked) or another enrolled one
        others = Device.objects.filter(revoked=False).exclude(pk=device.pk).order_by("hostname")
        here = [] if device.revoked else [("", f"This device ({device.hostname})")]
        form.fields["target_device"].choices = here + [
            (str(d.pk), f"{d.hostname} ({d.get_os_display()})") for d in others[:500]
        ]
    return form


@require_POST
@require("view")
def device_bulk(request):
    """One action on the devices ticked in the list (console/jobs/bulk.py)."""
    target = next_url(request, "device-list")
    action = request.POST.get("action", "")
    try:
        done = bulk.run_bulk_action(
            actor(request), action, request.POST.getlist("ids"), request.POST.get("group")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(target)
    n = len(done.devices)
    if not n:
        messages.error(request, "Tick at least one active device.")
    elif done.group is not None:
        messages.success(request, f"{n} device(s) added to {done.group.name}.")
    else:
        verb = "Backup" if action == "backup" else "Verification"
        messages.success(request, f"{verb} requested for {n} device(s).")
    return redirect(target)


def _request_command(request, pk, request_fn, verb: str):
    device = get_object_or_404(Device, pk=pk)
    try:
        request_fn(actor(request), device)
        messages.success(request, f"{verb} requested for {device.hostname}.")
    except PermissionDenied as exc:
        messages.error(request, str(exc))
    return redirect("device-detail", pk=pk)


@require_POST
@require("device.backup")
def device_backup(request, pk):
    return _request_command(request, pk, jobs.request_backup, "Backup")


@require_POST
@require("device.verify")
def device_verify(request, pk):
    # run by the console's workers on the repository (console/storage/verification.py)
    return _request_command(request, pk, verification.request_verify, "Verification")


@require("device.restore")
def device_restore(request, pk):
    device = get_object_or_404(Device, pk=pk)
    snapshots = list(device.snapshots.order_by("-taken_at")[:50])
    form = _restore_form(snapshots, request.POST or None, device)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        if d["target_device"] or device.revoked:
            return _restore_onto(request, device, form)
        with errors_onto(form, PermissionDenied):
            jobs.request_restore(
                actor(request),
                device,
                d["snapshot_id"],
                paths=d["paths"].splitlines(),
                target=d["target"],
                overwrite=d["overwrite"],
            )
            messages.success(request, f"Restore requested for {device.hostname}.")
            return redirect("device-detail", pk=pk)
    return render(
        request,
        "dashboard/device_restore.html",
        {"section": "devices", "device": device, "form": form},
    )


def _restore_onto(request, device, form):
    d = form.cleaned_data
    with errors_onto(form, PermissionDenied):
        target = Device.objects.filter(pk=d["target_device"] or None).first()
        if target is None:
            raise ValidationError({"target_device": ["Choose the device to restore onto."]})
        onto.request_restore_onto(
            actor(request),
            device,
            target,
            d["snapshot_id"],
            d["paths"].splitlines(),
            source_home=d["source_home"],
            folder=d["target"],
            overwrite=d["overwrite"],
        )
        messages.success(
            request, f"Restore of {device.hostname}'s files onto {target.hostname} requested."
        )
        return redirect("device-detail", pk=target.pk)
    return render(
        request,
        "dashboard/device_restore.html",
        {"section": "devices", "device": device, "form": form},
    )


@require("device.revoke")
def device_replace(request, pk):
    """Another device takes over this one (console/restore/takeover.py)."""
    device = get_object_or_404(Device, pk=pk)
    candidates = Device.objects.filter(revoked=False).exclude(pk=device.pk).order_by("hostname")
    error = ""
    if request.method == "POST":
        new = candidates.filter(pk=request.POST.get("replacement") or None).first()
        if new is None:
            error = "Choose the device that replaces this one."
        else:
            try:
                takeover.take_over(actor(request), device, new)
            except ValidationError as exc:
                error = " ".join(exc.messages)
            else:
                messages.success(
                    request,
                    f"{new.hostname} takes over {device.hostname}: its history, policy and "
                    "groups; it receives its new repository key at its next connection.",
                )
                return redirect("device-detail", pk=new.pk)
    return render(
        request,
        "dashboard/device_replace.html",
        {
            "section": "devices",
            "device": device,
            "candidates": candidates[:500],
            "error": error,
        },
    )


@require_POST
@require("device.revoke")
def device_revoke(request, pk):
    device = get_object_or_404(Device, pk=pk)
    fleet.revoke_device(actor(request), device, reason=request.POST.get("reason", ""))
    messages.success(
        request, f"{device.hostname} is revoked; it will be refused at its next connection."
    )
    return redirect("device-detail", pk=pk)


@require_POST
@require("device.edit")
def device_groups(request, pk):
    device = get_object_or_404(Device, pk=pk)
    ids = [int(i) for i in request.POST.getlist("groups") if i.isdigit()]
    fleet.set_device_groups(actor(request), device, list(DeviceGroup.objects.filter(pk__in=ids)))
    messages.success(request, f"Groups of {device.hostname} updated.")
    return redirect("device-detail", pk=pk)


@require("view")
def device_export(request):
    """The device list, as filtered on the page, as CSV (protection report)."""
    flt = device_filters.devices(request.GET)
    if flt.errors:  # a report must not silently leave a filter out
        return HttpResponseBadRequest(f"Filter not applied: {flt.error_text()}\n")
    qs = flt.qs.select_related("effective_policy", "effective_revision")
    now = timezone.now()
    header = [
        "hostname", "os", "os_version", "user", "status", "last_success_at",
        "last_backup_at", "last_seen_at", "last_backup_failed", "consecutive_failures",
        "last_error", "policy", "revision", "policy_applied", "storage_bytes",
        "agent_version", "device_id",
    ]  # fmt: skip
    rows = (
        [
            d.hostname,
            d.os,
            d.os_version,
            d.owner,
            d.protection(now),
            iso(d.last_success_at),
            iso(d.last_backup_at),
            iso(d.last_seen_at),
            d.failing,
            d.consecutive_failures,
            d.last_error,
            d.effective_policy.name if d.effective_policy else "",
            d.effective_revision.number if d.effective_revision else "",
            d.policy_in_sync,
            d.storage_bytes,
            d.agent_version,
            str(d.pk),
        ]  # fmt: skip
        for d in qs.iterator(chunk_size=2000)
    )
    return csv_response("cairn-devices", header, rows)
