"""Views every other app builds on: the health probe. (The landing page is
the dashboard's overview, console/dashboard/views/overview.py.)"""

from django.http import JsonResponse

from console.core.health import check_services


def health(request):
    """Liveness/readiness for load balancers: 200 when every service answers.

    Anonymous callers (the load balancer, anyone on the network) get only
    the verdict; which environment, which database engine and the probes'
    error messages are for signed-in users."""
    report = check_services()
    body = report if request.user.is_authenticated else {"ok": report["ok"]}
    return JsonResponse(body, status=200 if report["ok"] else 503)
