"""Report pages: the compliance report on screen (period and scope chosen,
totals, chart, per-device rows, controls, CSV/PDF downloads), the report
schedules (Admin manages, Auditor reads) and the past reports with their
digests and downloads."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from console.accounts.roles import can, require
from console.dashboard.views.common import PAGE_SIZE, actor, errors_onto
from console.fleet.models import DeviceGroup
from console.policies.models import Policy
from console.reports import compliance, scheduling
from console.reports.history import last_closed_day
from console.reports.pdf import bucket_counts, passed, verdict
from console.reports.schedules import Frequency, ReportFile, ReportSchedule, ScopeKind

#: device rows shown on screen; the CSV and PDF hold them all
SCREEN_ROWS = 200


class ReportForm(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    group = forms.ModelChoiceField(DeviceGroup.objects.order_by("name"), required=False)
    policy = forms.ModelChoiceField(Policy.objects.order_by("name"), required=False)

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if data.get("group") and data.get("policy"):
            raise forms.ValidationError("Choose a group or a policy, not both.")
        if start and end:
            if end > last_closed_day():
                self.add_error(
                    "end", "The history covers closed days: choose a day before today (UTC)."
                )
            try:
                compliance.check_period(start, end)
            except compliance.ScopeError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data

    def scope(self) -> compliance.Scope:
        data = self.cleaned_data
        if data.get("group"):
            return compliance.Scope.group(data["group"].pk)
        if data.get("policy"):
            return compliance.Scope.policy(data["policy"].pk)
        return compliance.Scope.all()


def _tone(text) -> str:
    t = str(text or "").lower()
    if passed(t):
        return "ok"
    if t in ("", "none"):
        return "muted"
    return "bad" if any(w in t for w in ("fail", "damage", "never", "not seen")) else "warn"


def _verdict_tone(sentence: str) -> str:
    if sentence.startswith("Met"):
        return "ok"
    return "bad" if sentence.startswith("Not met") else "warn"


def _pct(share: float) -> str:
    """A share as a percentage that never rounds up to 100 (99.96% is not 100%)."""
    value = int(share * 1000) / 10
    return f"{value:.1f}"


@require("report.view")
def reports_page(request):
    end = last_closed_day()
    form = ReportForm(request.GET or {"start": end - timedelta(days=29), "end": end})
    report = rows = chart = None
    if form.is_valid():
        report = compliance.build_compliance_report(
            form.cleaned_data["start"], form.cleaned_data["end"], form.scope()
        )
        rows = [
            (
                d,
                _tone(d.status),
                _tone(d.verification_result),
                _tone(d.test_restore_result),
                _pct(d.achieved_share),
            )
            for d in report.devices[:SCREEN_ROWS]
        ]
        counts = bucket_counts(report)
        top = max([n for _, n in counts] + [1])
        chart = [(label, n, round(100 * n / top)) for label, n in counts]
    query = {"from": form.data.get("start", ""), "to": form.data.get("end", "")}
    if form.is_valid():
        for key in ("group", "policy"):
            if form.cleaned_data.get(key):
                query[key] = form.cleaned_data[key].pk
    sentence, _ = verdict(report) if report else ("", None)
    return render(
        request,
        "dashboard/reports.html",
        {
            "section": "reports",
            "form": form,
            "report": report,
            "rows": rows,
            "more": len(report.devices) - SCREEN_ROWS
            if report and len(report.devices) > SCREEN_ROWS
            else 0,
            "chart": chart,
            "fleet_share": _pct(report.totals.within_rpo_share) if report else "",
            "verdict": sentence,
            "verdict_tone": _verdict_tone(sentence),
            "controls": [(c, _tone(c.result.split(":")[0])) for c in report.controls]
            if report
            else [],
            "file_query": "&".join(f"{k}={v}" for k, v in query.items()),
        },
    )


class ScheduleForm(forms.Form):
    name = forms.CharField(max_length=120)
    frequency = forms.ChoiceField(choices=Frequency.choices)
    scope_kind = forms.ChoiceField(label="Scope", choices=ScopeKind.choices)
    group = forms.ModelChoiceField(DeviceGroup.objects.order_by("name"), required=False)
    policy = forms.ModelChoiceField(Policy.objects.order_by("name"), required=False)
    recipients = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=20000,
        help_text="E-mail addresses, one a line or separated by commas; the PDF is attached",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def to_input(self) -> scheduling.ScheduleInput:
        d = self.cleaned_data
        return scheduling.ScheduleInput(
            name=d["name"],
            frequency=d["frequency"],
            scope_kind=d["scope_kind"],
            group=d.get("group"),
            policy=d.get("policy"),
            recipients=tuple(
                a
                for a in d["recipients"].replace(";", ",").replace("\n", ",").split(",")
                if a.strip()
            ),
            enabled=d["enabled"],
        )


def _initial(schedule: ReportSchedule) -> dict:
    return {
        "name": schedule.name,
        "frequency": schedule.frequency,
        "scope_kind": schedule.scope_kind,
        "group": schedule.group_id,
        "policy": schedule.policy_id,
        "recipients": "\n".join(schedule.recipients),
        "enabled": schedule.enabled,
    }


@require("report.view")
def schedule_list(request):
    form = ScheduleForm(request.POST or None)
    if request.method == "POST":
        if not can(request.user, "report.manage"):
            raise PermissionDenied
        if form.is_valid():
            with errors_onto(form):
                schedule = scheduling.create_schedule(actor(request), form.to_input())
                messages.success(request, f"Schedule {schedule.name} created.")
                return redirect("report-schedules")
    today = last_closed_day() + timedelta(days=1)
    schedules = [
        (s, scheduling.scope_label(s), scheduling.last_closed_period(s.frequency, today))
        for s in ReportSchedule.objects.select_related("group", "policy")
    ]
    return render(
        request,
        "dashboard/report_schedules.html",
        {"section": "reports", "schedules": schedules, "form": form},
    )


@require("report.view")
def schedule_edit(request, pk):
    schedule = get_object_or_404(ReportSchedule, pk=pk)
    form = ScheduleForm(request.POST or None, initial=_initial(schedule))
    if request.method == "POST":
        if not can(request.user, "report.manage"):
            raise PermissionDenied
        if request.POST.get("action") == "delete":
            scheduling.delete_schedule(actor(request), schedule)
            messages.success(request, f"Schedule {schedule.name} deleted.")
            return redirect("report-schedules")
        if form.is_valid():
            with errors_onto(form):
                scheduling.update_schedule(actor(request), schedule, form.to_input())
                messages.success(request, "Schedule saved.")
                return redirect("report-schedules")
    files = schedule.files.select_related("record").defer("content")[:20]
    return render(
        request,
        "dashboard/report_schedule_form.html",
        {"section": "reports", "schedule": schedule, "form": form, "files": files},
    )


@require("report.view")
def past_reports(request):
    files = ReportFile.objects.select_related("record", "schedule").defer("content")
    page = Paginator(files.order_by("-record__generated_at", "-id"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "dashboard/reports_past.html", {"section": "reports", "page": page})


@require("report.view")
def past_download(request, pk):
    get_object_or_404(ReportFile.objects.only("pk"), pk=pk)
    stored = scheduling.open_stored(actor(request), pk)
    response = HttpResponse(bytes(stored.content), content_type=stored.content_type)
    response["Content-Disposition"] = f'attachment; filename="{stored.filename}"'
    response["X-Report-SHA256"] = stored.record.sha256
    return response
