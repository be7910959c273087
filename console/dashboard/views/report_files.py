"""Compliance report files from the console (the same files as the API's
/api/v1/reports/compliance/, digest kept and export audited)."""

from __future__ import annotations

from django import forms
from django.http import HttpResponse, HttpResponseBadRequest

from console.accounts.roles import require
from console.audit.services import Actor
from console.reports import compliance, exports
from console.reports.history import last_closed_day
from console.reports.models import ReportFormat


class ComplianceFileForm(forms.Form):
    start = forms.DateField(input_formats=["%Y-%m-%d"])
    end = forms.DateField(input_formats=["%Y-%m-%d"])
    group = forms.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    policy = forms.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    format = forms.ChoiceField(choices=ReportFormat.choices)

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end > last_closed_day():
                raise forms.ValidationError("The history covers closed days: end before today.")
            try:
                compliance.check_period(start, end)
            except compliance.ScopeError as exc:
                raise forms.ValidationError(str(exc)) from None
        if data.get("group") and data.get("policy"):
            raise forms.ValidationError("Give a group or a policy, not both.")
        return data


@require("report.view")
def compliance_file(request):
    """GET ?from=&to=[&group=|&policy=]&format=json|csv|pdf: the report file."""
    form = ComplianceFileForm(
        {**request.GET.dict(), "start": request.GET.get("from"), "end": request.GET.get("to")}
    )
    if not form.is_valid():
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        return HttpResponseBadRequest(f"Report not generated: {errors}\n")
    data = form.cleaned_data
    try:
        if data.get("group"):
            scope = compliance.Scope.group(data["group"])
        elif data.get("policy"):
            scope = compliance.Scope.policy(data["policy"])
        else:
            scope = compliance.Scope.all()
    except compliance.ScopeError as exc:
        return HttpResponseBadRequest(f"Report not generated: {exc}\n")
    report = compliance.build_compliance_report(data["start"], data["end"], scope)
    fmt = data["format"]
    body, kept = exports.export(Actor.from_request(request), report, scope, fmt)
    response = HttpResponse(body, content_type=exports.CONTENT_TYPES[fmt])
    response["Content-Disposition"] = (
        f'attachment; filename="cairn-compliance-{report.start}-{report.end}-{kept.pk}.{fmt}"'
    )
    return response
