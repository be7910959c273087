"""``GET /metrics``: the fleet gauges in Prometheus' text format, for a
scraper holding ``CAIRN_METRICS_TOKEN`` (console/metrics/exporter.py)."""

from __future__ import annotations

from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from console.metrics import exporter, fleet


@require_GET
def metrics(request):
    decision = exporter.decide(request.headers.get("Authorization"))
    if not decision.allowed:
        response = HttpResponse(
            decision.message, status=decision.status, content_type="text/plain; charset=utf-8"
        )
        if decision.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="cairn-metrics"'
        return response
    response = HttpResponse(generate_latest(fleet.registry), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
