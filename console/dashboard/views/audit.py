"""The audit log and its CSV export."""

from __future__ import annotations

import json

from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render

from console.accounts.roles import require
from console.audit import filters as audit_filters
from console.audit.models import AuditEvent
from console.dashboard.views.common import (
    Window,
    csv_response,
    iso,
    params_without_page,
    shown,
)


@require("audit.view")
def audit_list(request):
    flt = shown(request, audit_filters.audit_events(request.GET))
    actions = sorted(
        {
            a.split(".")[0]
            for a in AuditEvent.objects.values_list("action", flat=True).distinct()[:200]
        }
    )
    return render(
        request,
        "dashboard/audit.html",
        {
            "section": "audit",
            "page": Window(flt.qs.order_by("-at", "-id"), request),
            "f": flt.values(),
            "actions": actions,
            "vias": AuditEvent.Via.choices,
            "qs": params_without_page(request),
        },
    )


@require("audit.view")
def audit_detail(request, pk):
    event = get_object_or_404(AuditEvent, pk=pk)
    return render(request, "dashboard/audit_detail.html", {"section": "audit", "event": event})


@require("audit.view")
def audit_export(request):
    """The audit log, as filtered on the page, as CSV."""
    flt = audit_filters.audit_events(request.GET)
    if flt.errors:  # a report must not silently leave a filter out
        return HttpResponseBadRequest(f"Filter not applied: {flt.error_text()}\n")
    qs = flt.qs.order_by("-at", "-id")
    header = ["at", "user", "action", "target_type", "target_id", "target", "via",
              "source_address", "before", "after"]  # fmt: skip
    rows = (
        [
            iso(e.at),
            e.actor_name,
            e.action,
            e.target_type,
            e.target_id,
            e.target_repr,
            e.via,
            e.source_address or "",
            json.dumps(e.before, sort_keys=True) if e.before is not None else "",
            json.dumps(e.after, sort_keys=True) if e.after is not None else "",
        ]  # fmt: skip
        for e in qs.iterator(chunk_size=2000)
    )
    return csv_response("cairn-audit", header, rows)
