"""The overview page: fleet protection figures, 30-day chart, rollout."""

from __future__ import annotations

from django.shortcuts import render

from console.accounts.roles import require
from console.fleet.queries import overview


def _chart(days: list[dict]) -> dict:
    """Geometry for the inline-SVG bar chart (30 days, succeeded over failed)."""
    height, bar_w, gap = 120, 14, 4
    peak = max([d["succeeded"] + d["failed"] for d in days] + [1])
    bars = []
    for i, d in enumerate(days):
        ok_h = round(height * d["succeeded"] / peak, 1)
        bad_h = round(height * d["failed"] / peak, 1)
        x = i * (bar_w + gap)
        bars.append(
            {
                **d,
                "x": x,
                "ok_y": height - ok_h,
                "ok_h": ok_h,
                "bad_y": height - ok_h - bad_h,
                "bad_h": bad_h,
                "label": d["day"].strftime("%d %b") if i % 5 == 0 or i == len(days) - 1 else "",
            }
        )
    return {
        "bars": bars,
        "width": len(days) * (bar_w + gap),
        "height": height,
        "bar_w": bar_w,
        "peak": peak,
        "total_ok": sum(d["succeeded"] for d in days),
        "total_failed": sum(d["failed"] for d in days),
    }


@require("view")
def overview_page(request):
    data = overview()
    data["chart"] = _chart(data["chart"])
    template = "dashboard/_overview_live.html" if request.GET.get("partial") else None
    return render(request, template or "dashboard/overview.html", {**data, "section": "overview"})
