"""Alert pages: the history (everyone who may view; Operators and Admins
acknowledge) and the rules page (thresholds, hold-downs, channels: Admins
change them, Auditors and Operators read). Thin: console/alerts/services.py
validates and audits."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console.accounts.roles import can, require
from console.alerts import filters, services
from console.alerts.evaluation import settings_row
from console.alerts.models import Alert, Channel, ChannelKind, Rule, Thresholds
from console.alerts.rules import default_thresholds
from console.dashboard.views.common import Window, actor, params_without_page
from console.fleet.models import DeviceGroup


@require("view")
def alert_list(request):
    flt = filters.alerts(request.GET)
    qs = flt.qs if flt.is_valid() else Alert.objects.none()
    page = Window(qs.order_by("-started_at", "-id"), request)
    return render(
        request,
        "dashboard/alerts.html",
        {
            "section": "alerts",
            "page": page,
            "filter": flt,
            "shown": flt.values(),
            "qs": params_without_page(request),
        },
    )


@require("alert.acknowledge")
@require_POST
def alert_acknowledge(request, pk):
    alert = get_object_or_404(Alert, pk=pk)
    try:
        services.acknowledge(actor(request), alert)
        messages.success(request, "Alert acknowledged.")
    except services.AlertError as exc:
        messages.error(request, str(exc))
    return redirect("alert-list")


class ThresholdsForm(forms.Form):
    group = forms.ModelChoiceField(
        queryset=DeviceGroup.objects.all(), required=False,
        empty_label="Organisation default", help_text="Thresholds of this group's devices",
    )  # fmt: skip


for _name in Thresholds.RULE_FIELDS:
    ThresholdsForm.base_fields[_name] = forms.BooleanField(
        required=False, label=f"Rule on: {Rule(_name).label}"
    )
for _name, (_low, _high) in services.BOUNDS.items():
    ThresholdsForm.base_fields[_name] = forms.IntegerField(
        min_value=_low, max_value=_high, label=_name.replace("_", " ").capitalize()
    )


class SettingsForm(forms.Form):
    open_after_minutes = forms.IntegerField(min_value=0, max_value=services.MAX_MINUTES)
    resolve_after_minutes = forms.IntegerField(min_value=0, max_value=services.MAX_MINUTES)


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=120)
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    recipients = forms.CharField(
        required=False, max_length=5000, help_text="E-mail: addresses, one per line"
    )
    url = forms.URLField(
        required=False, max_length=500, assume_scheme="https", help_text="Webhook: http(s) URL"
    )
    secret = forms.CharField(
        required=False, max_length=200, widget=forms.PasswordInput,
        help_text="Webhook: HMAC-SHA256 key of X-Cairn-Signature",
    )  # fmt: skip
    rules = forms.MultipleChoiceField(
        choices=Rule.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every rule",
    )  # fmt: skip
    send_resolved = forms.BooleanField(required=False, initial=True)
    digest = forms.BooleanField(required=False, help_text="One message a day instead")


def _initial_thresholds(row: Thresholds) -> dict:
    return {f: getattr(row, f) for f in services.THRESHOLD_FIELDS}


def _handle_post(request):
    """One of the page's forms was posted (by ``action``): the form, bound
    and with its errors, or None when it succeeded."""
    action = request.POST.get("action")
    try:
        if action == "thresholds":
            form = ThresholdsForm(request.POST)
            if form.is_valid():
                d = dict(form.cleaned_data)
                group = d.pop("group")
                services.save_thresholds(actor(request), group, d)
                messages.success(request, f"Thresholds saved for {group or 'the organisation'}.")
                return None
            return form
        if action == "delete_thresholds":
            row = get_object_or_404(Thresholds, pk=request.POST.get("pk"))
            services.delete_thresholds(actor(request), row)
            messages.success(request, "Group thresholds removed.")
            return None
        if action == "settings":
            form = SettingsForm(request.POST)
            if form.is_valid():
                d = form.cleaned_data
                services.save_settings(
                    actor(request), d["open_after_minutes"], d["resolve_after_minutes"]
                )
                messages.success(request, "Hold-downs saved.")
                return None
            return form
        if action == "channel":
            form = ChannelForm(request.POST)
            if form.is_valid():
                d = dict(form.cleaned_data)
                d["recipients"] = [r.strip() for r in d["recipients"].split() if r.strip()]
                d["secret"] = d["secret"] or None
                services.save_channel(actor(request), None, d)
                messages.success(request, f"Channel {d['name']} created.")
                return None
            return form
        if action == "delete_channel":
            channel = get_object_or_404(Channel, pk=request.POST.get("pk"))
            services.delete_channel(actor(request), channel)
            messages.success(request, f"Channel {channel.name} deleted.")
            return None
    except services.AlertError as exc:
        messages.error(request, str(exc))
        return None
    messages.error(request, "Unknown action.")
    return None


@require("view")
def alert_rules(request):
    if request.method == "POST":
        if not can(request.user, "alert.manage"):
            raise PermissionDenied
        bound = _handle_post(request)
        if bound is None:
            return redirect("alert-rules")
    else:
        bound = None
    default = default_thresholds()
    hold = settings_row()
    overrides = Thresholds.objects.filter(group__isnull=False).select_related("group")
    rows = [(t.group.name, t) for t in overrides.order_by("group__name")]
    rows.append(("Organisation default", default))
    ctx = {
        "section": "alerts",
        "threshold_rows": [
            (label, t, [Rule(f).label for f in Thresholds.RULE_FIELDS if getattr(t, f)])
            for label, t in rows
        ],
        "hold": hold,
        "channels": Channel.objects.order_by("name"),
        "thresholds_form": ThresholdsForm(initial=_initial_thresholds(default)),
        "settings_form": SettingsForm(
            initial={
                "open_after_minutes": hold.open_after_minutes,
                "resolve_after_minutes": hold.resolve_after_minutes,
            }
        ),
        "channel_form": ChannelForm(),
    }
    for key, cls in (
        ("thresholds_form", ThresholdsForm),
        ("settings_form", SettingsForm),
        ("channel_form", ChannelForm),
    ):
        if isinstance(bound, cls):
            ctx[key] = bound
    return render(request, "dashboard/alert_rules.html", ctx)
