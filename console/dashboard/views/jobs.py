"""Job runs and commands."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console.accounts.roles import require
from console.dashboard.views.common import (
    Window,
    actor,
    next_url,
    params_without_page,
    shown,
)
from console.jobs import filters as job_filters
from console.jobs import openfiles
from console.jobs import services as jobs
from console.jobs.models import (
    Command,
    CommandKind,
    CommandState,
    JobKind,
    JobRun,
    JobState,
)
from console.storage import verification


@require("view")
def job_list(request):
    flt = shown(request, job_filters.job_runs(request.GET))
    running = list(
        JobRun.objects.filter(state=JobState.RUNNING)
        .select_related("device")
        .order_by("-started_at")[:50]
    )
    context = {
        "section": "jobs",
        "page": Window(flt.qs.order_by("-started_at", "-pk"), request),
        "running": running,
        "states": JobState.choices,
        "kinds": JobKind.choices,
        "f": flt.values(),
        "qs": params_without_page(request),
    }
    if request.GET.get("partial") == "running":
        return render(request, "dashboard/_running.html", context)
    return render(request, "dashboard/jobs.html", context)


@require("view")
def job_detail(request, pk):
    run = get_object_or_404(
        JobRun.objects.select_related("device", "policy_revision__policy", "command"), pk=pk
    )
    template = (
        "dashboard/_job_progress.html"
        if request.GET.get("partial")
        else "dashboard/job_detail.html"
    )
    torn, torn_count = openfiles.inconsistent_files(run.stats)
    context = {
        "section": "jobs",
        "run": run,
        "outcome": openfiles.outcome(run),
        "open_files": openfiles.point_in_time(run.stats),
        "torn_files": torn,
        "torn_count": torn_count,
        # shown on their own: not as raw tags among the counters
        "plain_stats": {k: v for k, v in run.stats.items() if not isinstance(v, dict | list)},
        # verify / test restore: what was read, how much, what was damaged, which files
        "verification": verification.summary(run),
    }
    return render(request, template, context)


@require("view")
def command_list(request):
    flt = shown(request, job_filters.commands(request.GET))
    return render(
        request,
        "dashboard/commands.html",
        {
            "section": "jobs",
            "page": Window(flt.qs.order_by("-created_at", "-pk"), request),
            "states": CommandState.choices,
            "kinds": CommandKind.choices,
            "f": flt.values(),
            "qs": params_without_page(request),
        },
    )


@require_POST
@require("device.backup")
def command_cancel(request, pk):
    command = get_object_or_404(Command, pk=pk)
    try:
        jobs.cancel_command(actor(request), command)
        messages.success(request, "Cancellation requested.")
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    return redirect(next_url(request, "command-list"))
