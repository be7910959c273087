"""Views every other app builds on: the health probe and the landing page."""

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render

from console.core.health import check_services


def health(request):
    """Liveness/readiness for load balancers: 200 when every service answers."""
    report = check_services()
    return JsonResponse(report, status=200 if report["ok"] else 503)


@login_required
def home(request):
    return render(request, "core/home.html")
