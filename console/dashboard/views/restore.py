"""Restore without the device (issue 11): the snapshot browser (folders,
paging, download buttons, compare) and the file search. Thin over
console/restore/services.py; ``device.download`` (Admin, Operator). A search
across the fleet is for an Admin; others search one device."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from console.accounts.roles import ADMIN, require, roles_of
from console.dashboard.views.common import actor
from console.fleet.models import Device
from console.restore import services
from console.restore.responses import range_refused, streaming_response


def _crumbs(path: str) -> list[tuple[str, str]]:
    parts = [p for p in path.split("/") if p]
    return [(p, "/" + "/".join(parts[: i + 1])) for i, p in enumerate(parts)]


def _snapshots(device: Device):
    return list(device.snapshots.order_by("-taken_at")[:50])


@require("device.download")
@require_GET
def snapshot_browse(request, pk, snapshot):
    device = get_object_or_404(Device, pk=pk)
    path = request.GET.get("path") or "/"
    context = {"section": "devices", "device": device, "snapshot_ref": snapshot, "path": path}
    try:
        listing = services.list_folder(device, snapshot, path, request.GET.get("cursor") or None)
    except services.RestoreError as exc:
        context["error"] = str(exc)
        return render(request, "dashboard/restore_browse.html", context, status=exc.status)
    base = listing.path.rstrip("/")
    for entry in listing.entries:
        entry["path"] = f"{base}/{entry['name']}"
    context.update(
        listing=listing,
        crumbs=_crumbs(listing.path),
        parent=listing.path.rsplit("/", 1)[0] or "/",
        snapshots=_snapshots(device),
    )
    return render(request, "dashboard/restore_browse.html", context)


@require("device.download")
@require_GET
def snapshot_compare(request, pk, snapshot):
    device = get_object_or_404(Device, pk=pk)
    path = request.GET.get("path") or "/"
    other = request.GET.get("with") or "latest"
    context = {"section": "devices", "device": device, "snapshot_ref": snapshot, "path": path}
    try:
        context["result"] = services.compare(device, snapshot, other, path)
    except services.RestoreError as exc:
        context["error"] = str(exc)
        return render(request, "dashboard/restore_compare.html", context, status=exc.status)
    return render(request, "dashboard/restore_compare.html", context)


@require("device.download")
@require_GET
def snapshot_download(request, pk, snapshot):
    device = get_object_or_404(Device, pk=pk)
    try:
        dl = services.download(
            actor(request), device, snapshot, request.GET.get("path"), request.headers.get("Range")
        )
    except services.RangeNotSatisfiable as exc:
        return range_refused(exc)
    except services.RestoreError as exc:
        context = {"section": "devices", "device": device, "snapshot_ref": snapshot}
        context |= {"path": request.GET.get("path") or "/", "error": str(exc)}
        return render(request, "dashboard/restore_browse.html", context, status=exc.status)
    return streaming_response(dl)


@require("device.download")
@require_GET
def file_search(request):
    q = (request.GET.get("q") or "").strip()
    device_id = request.GET.get("device") or ""
    fleet_wide = ADMIN in roles_of(request.user)
    context = {"section": "devices", "q": q, "device_id": device_id, "fleet_wide": fleet_wide}
    context["devices"] = Device.objects.order_by("hostname").only("pk", "hostname")[:1000]
    if not q:
        return render(request, "dashboard/restore_search.html", context)
    if device_id:
        try:
            devices = [Device.objects.get(pk=device_id)]
        except (Device.DoesNotExist, ValueError, Exception):
            context["error"] = "No such device."
            return render(request, "dashboard/restore_search.html", context, status=400)
    elif fleet_wide:
        devices = list(Device.objects.order_by("hostname", "pk"))
    else:
        context["error"] = "Pick a device: a search across the fleet is for an Admin."
        return render(request, "dashboard/restore_search.html", context, status=400)
    try:
        context["result"] = services.search(q, devices)
    except services.RestoreError as exc:
        context["error"] = str(exc)
        return render(request, "dashboard/restore_search.html", context, status=exc.status)
    return render(request, "dashboard/restore_search.html", context)
