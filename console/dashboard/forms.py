"""Forms of the dashboard. The policy form is a flat view of the policy
contract (agent/policy): each field edits one contract field path, and the
contract's errors are mapped back onto the fields by those paths."""

from __future__ import annotations

from dataclasses import fields

from django import forms

from agent import policy as contract
from agent.policy.limits import Limits
from agent.policy.openfiles import OPEN_FILE_MODES
from agent.policy.retention import Retention
from agent.policy.verification import Verification
from console.accounts.roles import ROLES
from console.fleet.models import DeviceGroup
from console.fleet.services import TOKEN_HOURS_DEFAULT, TOKEN_HOURS_MAX

# Each form field edits one field of the policy contract (agent/policy), named
# by its path; the contract's errors come back by path and are shown on the
# field that edits it (tests/console/test_policy_form_limits.py checks every
# field of the contract has one).
FIELD_PATHS: dict[str, str] = {
    "sources_windows": "sources.windows",
    "sources_macos": "sources.macos",
    "sources_linux": "sources.linux",
    "excludes": "excludes",
    "every_hours": "schedule.every_hours",
    "times": "schedule.times",
    "window_start": "schedule.window",
    "catch_up": "schedule.catch_up",
    "rpo_hours": "rpo_hours",
    "open_files": "open_files",
    **{f.name: f"retention.{f.name}" for f in fields(Retention)},
    **{f.name: f"limits.{f.name}" for f in fields(Limits)},
    **{f"verify_{f.name}": f"verification.{f.name}" for f in fields(Verification)},
}
# An error by path -> the form field showing it (a whole-section error on its first).
ERROR_FIELD = {
    "name": "name",
    "sources": "sources_windows",
    **{path: field for field, path in FIELD_PATHS.items()},
}


def _lines(value: str) -> list[str]:
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


def _num(value, blank=None):
    value = (value or "").strip() if isinstance(value, str) else value
    if value in ("", None):
        return blank
    try:
        return int(value)
    except (TypeError, ValueError):
        return value  # spec validation reports it


class NumberText(forms.TextInput):
    """A numeric text box without browser-side limits: the server's field
    errors are the single, consistent source of truth."""

    input_type = "text"

    def __init__(self, attrs=None):
        super().__init__({"inputmode": "numeric", "class": "num", **(attrs or {})})


def _n(label, help_text=""):
    return forms.CharField(label=label, required=False, help_text=help_text, widget=NumberText())


class PolicyForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    comment = forms.CharField(
        required=False, max_length=255, help_text="What changed and why (kept with the revision)"
    )
    sources_windows = forms.CharField(
        label="Windows folders", required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    sources_macos = forms.CharField(
        label="macOS folders", required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    sources_linux = forms.CharField(
        label="Linux folders", required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    excludes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="One glob pattern per line; * and ? stay within a folder, ** crosses folders.",
    )
    schedule_mode = forms.ChoiceField(
        choices=[("interval", "Every N hours"), ("times", "At times of day")],
        widget=forms.RadioSelect,
        initial="interval",
    )
    every_hours = _n("Every (hours)")
    times = forms.CharField(
        label="Times of day", required=False, help_text="24-hour HH:MM, separated by commas"
    )
    window_start = forms.CharField(label="Allowed from", required=False, help_text="HH:MM")
    window_end = forms.CharField(label="until", required=False, help_text="HH:MM")
    catch_up = forms.BooleanField(
        label="Catch up after a missed run (laptop asleep or off)", required=False
    )
    rpo_hours = _n(
        "Recovery point objective (hours)",
        "A device is protected while its last successful backup is younger than this.",
    )
    keep_last = _n("Keep last")
    hourly = _n("Hourly")
    daily = _n("Daily")
    weekly = _n("Weekly")
    monthly = _n("Monthly")
    yearly = _n("Yearly")
    keep_within_days = _n("Keep everything within (days)")
    upload_kbps = _n("Upload limit (kbit/s)", "0 = unlimited")
    cpu_percent = _n("CPU ceiling (% of the machine)", "0 = no ceiling")
    background_priority = forms.BooleanField(label="Run at background priority", required=False)
    pause_on_battery = forms.BooleanField(label="Pause on battery", required=False)
    pause_on_metered = forms.BooleanField(label="Pause on metered networks", required=False)
    open_files = forms.ChoiceField(
        label="Open files", choices=list(OPEN_FILE_MODES.items()), widget=forms.RadioSelect
    )
    verify_every_days = _n("Verify every (days)", "0 = never")
    verify_sample_percent = _n("Sample of data read back (%)")

    @classmethod
    def initial_from(cls, name: str, description: str, spec: dict | contract.Policy) -> dict:
        policy = contract.load(spec)
        sched = policy.schedule
        initial = {
            "name": name,
            "description": description,
            "sources_windows": "\n".join(policy.sources.windows),
            "sources_macos": "\n".join(policy.sources.macos),
            "sources_linux": "\n".join(policy.sources.linux),
            "excludes": "\n".join(policy.excludes),
            "schedule_mode": "times" if sched.times else "interval",
            "every_hours": sched.every_hours or "",
            "times": ", ".join(sched.times),
            "window_start": sched.window.start if sched.window else "",
            "window_end": sched.window.end if sched.window else "",
            "catch_up": sched.catch_up,
            "rpo_hours": policy.rpo_hours,
            "open_files": policy.open_files,
        }
        for part, prefix in (
            (policy.retention, ""),
            (policy.limits, ""),
            (policy.verification, "verify_"),
        ):
            initial.update({prefix + f.name: getattr(part, f.name) for f in fields(part)})
        return initial

    def to_spec(self) -> dict:
        d = self.cleaned_data
        interval = d.get("schedule_mode") != "times"
        window = None
        if d.get("window_start") or d.get("window_end"):
            window = {"start": d.get("window_start", ""), "end": d.get("window_end", "")}
        return {
            "sources": {
                "windows": _lines(d.get("sources_windows")),
                "macos": _lines(d.get("sources_macos")),
                "linux": _lines(d.get("sources_linux")),
            },
            "excludes": _lines(d.get("excludes")),
            "schedule": {
                "every_hours": _num(d.get("every_hours")) if interval else None,
                "times": [] if interval else (d.get("times") or ""),
                "window": window,
                "catch_up": bool(d.get("catch_up")),
            },
            "rpo_hours": _num(d.get("rpo_hours")),
            "retention": {f.name: _num(d.get(f.name)) for f in fields(Retention)},
            "limits": {
                "upload_kbps": _num(d.get("upload_kbps"), 0),
                "cpu_percent": _num(d.get("cpu_percent"), 0),
                "background_priority": bool(d.get("background_priority")),
                "pause_on_battery": bool(d.get("pause_on_battery")),
                "pause_on_metered": bool(d.get("pause_on_metered")),
            },
            "open_files": d.get("open_files") or "",
            "verification": {
                "every_days": _num(d.get("verify_every_days"), 0),
                "sample_percent": _num(d.get("verify_sample_percent")),
            },
        }

    def add_spec_errors(self, errors: dict[str, list[str]]) -> None:
        times_mode = self.cleaned_data.get("schedule_mode") == "times"
        for path, messages in errors.items():
            field = ERROR_FIELD.get(path)
            if times_mode and field == "every_hours":
                field = "times"  # the interval box is hidden in times-of-day mode
            for message in messages:
                self.add_error(field if field in self.fields else None, message)


class AssignForm(forms.Form):
    group = forms.ModelChoiceField(queryset=DeviceGroup.objects.all(), empty_label="Choose a group")
    precedence = forms.IntegerField(
        initial=100, help_text="Lower number wins when a device is in several groups"
    )


class GroupForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class TokenForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="e.g. “Finance laptops, March rollout”")
    group = forms.ModelChoiceField(
        queryset=DeviceGroup.objects.all(),
        required=False,
        empty_label="No group",
        help_text="Devices enrolled with this token join this group",
    )
    # Hours, the one unit of a token's lifetime (console/fleet/services.py).
    expires_in_hours = forms.IntegerField(
        label="Valid for (hours)",
        initial=TOKEN_HOURS_DEFAULT,
        min_value=1,
        max_value=TOKEN_HOURS_MAX,
        help_text="168 is a week, 720 thirty days",
        required=False,
    )
    max_uses = forms.IntegerField(label="Uses", initial=25, min_value=1, max_value=100000)

    def clean(self):
        data = super().clean()
        if data.get("expires_in_hours") is None and "expires_in_hours" not in self.errors:
            # A page rendered before the unit became hours posts days.
            days = self.data.get("expires_days", "")
            if str(days).isdigit() and 1 <= int(days) <= TOKEN_HOURS_MAX // 24:
                data["expires_in_hours"] = int(days) * 24
            else:
                self.add_error("expires_in_hours", "This field is required.")
        return data


class RestoreForm(forms.Form):
    snapshot_id = forms.ChoiceField(label="Snapshot")
    paths = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One path per line; empty restores the whole snapshot",
    )
    target = forms.CharField(
        required=False,
        help_text="Empty restores to the original locations; or a folder on the device",
    )
    overwrite = forms.BooleanField(
        required=False, label="Overwrite files that are newer on the device"
    )
    # restore onto another device (issue 11): choices set by the view
    target_device = forms.ChoiceField(
        required=False,
        label="Restore onto",
        help_text="Another enrolled device: the paths are mapped onto its user's profile",
    )
    source_home = forms.CharField(
        required=False,
        max_length=1024,
        label="Source user's profile",
        help_text="For another device: e.g. /C/Users/ana; empty uses the one the paths lie under",
    )


class StorageTargetForm(forms.Form):
    name = forms.CharField(max_length=120)
    endpoint = forms.CharField(max_length=255, help_text="e.g. minio.example.org:9000")
    bucket = forms.CharField(max_length=255)
    region = forms.CharField(max_length=64, initial="us-east-1")
    prefix = forms.CharField(max_length=255, required=False, help_text="Usually the organisation")
    use_tls = forms.BooleanField(required=False, initial=True, label="Use TLS")
    is_default = forms.BooleanField(required=False, label="Default target for new devices")
    access_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted; leave empty to keep the current one",
    )
    secret_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted; leave empty to keep the current one",
    )


class UserForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=[])
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput,
        help_text="Set for a new user; leave empty to keep the current password",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(r, r) for r in ROLES] + [("", "No access")]
