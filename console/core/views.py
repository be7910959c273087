"""Views every other app builds on: the health probe. (The landing page is
the dashboard's overview, console/dashboard/views.py.)"""

from django.http import JsonResponse

from console.core.health import check_services


def health(request):
    """Liveness/readiness for load balancers: 200 when every service answers."""
    report = check_services()
    return JsonResponse(report, status=200 if report["ok"] else 503)
