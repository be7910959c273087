"""Server-rendered pages of the console. Thin: read through
console/fleet/queries.py, change through the service modules, check roles
through console/accounts/roles.py (the same module the API uses)."""

from __future__ import annotations

import csv
import json
import uuid
from contextlib import contextmanager
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from console.accounts import lockout
from console.accounts import services as accounts
from console.accounts.roles import BULK_ACTIONS, ROLE_DESCRIPTIONS, ROLES, can, require, role_of
from console.accounts.services import save_user
from console.audit.models import AuditEvent
from console.audit.queries import audit_events
from console.audit.services import Actor
from console.core.spreadsheet import safe_row
from console.dashboard.forms import (
    AssignForm,
    GroupForm,
    PolicyForm,
    RestoreForm,
    StorageTargetForm,
    TokenForm,
    UserForm,
)
from console.fleet import services as fleet
from console.fleet.models import OS, Device, DeviceGroup, EnrollmentToken
from console.fleet.queries import STATUS_CHOICES, DeviceFilter, overview
from console.jobs import openfiles
from console.jobs import queries as job_queries
from console.jobs import services as jobs
from console.jobs.models import (
    Command,
    CommandKind,
    CommandState,
    JobKind,
    JobRun,
    JobState,
)
from console.policies import services as policies
from console.policies import spec as specs
from console.policies.models import Policy, PolicyAssignment, PolicyRevision
from console.storage import observed
from console.storage import services as storage
from console.storage.models import StorageTarget

PAGE_SIZE = 50


def _actor(request) -> Actor:
    return Actor.from_request(request, via=AuditEvent.Via.UI)


def _errors_to_form(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errs in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errs)
    else:
        form.add_error(None, exc.messages)


@contextmanager
def _errors_onto(form, *also: type[Exception]):
    """Run a form's service call and what follows its success: a ValidationError
    it raises (or one of ``also``, by its text) is shown on the form instead, and
    the view goes on to render the form again."""
    try:
        yield
    except ValidationError as exc:
        _errors_to_form(form, exc)
    except also as exc:
        form.add_error(None, str(exc))


class Window:
    """Newer/older paging without COUNT(*) (the job history has millions of rows)."""

    def __init__(self, qs, request, size=PAGE_SIZE):
        try:
            self.number = max(1, int(request.GET.get("page", 1)))
        except ValueError:
            self.number = 1
        start = (self.number - 1) * size
        rows = list(qs[start : start + size + 1])
        self.object_list = rows[:size]
        self.has_next = len(rows) > size
        self.has_previous = self.number > 1
        self.next_page_number = self.number + 1
        self.previous_page_number = self.number - 1

    def __iter__(self):
        return iter(self.object_list)


def _next_url(request, default: str) -> str:
    """The page a POST came from (its ``next`` field) if on this site, else the
    page named ``default``: never an open redirect."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse(default)
    return target


def _params_without_page(request) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


# --- overview ------------------------------------------------------------------------


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


# --- devices ----------------------------------------------------------------------------


@require("view")
def device_list(request):
    flt = DeviceFilter.from_params(request.GET)
    qs = flt.apply().select_related("effective_policy")
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "dashboard/devices.html",
        {
            "section": "devices",
            "page": page,
            "filter": flt,
            "status_choices": STATUS_CHOICES,
            "os_choices": OS.choices,
            "groups": DeviceGroup.objects.only("id", "name"),
            "policies": Policy.objects.only("id", "name"),
            "base_qs": flt.querystring(),
            "bulk": any(can(request.user, c) for c in BULK_ACTIONS.values()),
            "sort_qs": flt.querystring(sort=""),
            "now": timezone.now(),
        },
    )


@require("view")
def device_detail(request, pk):
    device = get_object_or_404(
        Device.objects.select_related("effective_policy", "effective_revision"), pk=pk
    )
    effective = policies.effective_policy_for_device(device)
    runs = list(device.job_runs.select_related("policy_revision").order_by("-started_at")[:25])
    commands = list(device.commands.select_related("created_by").order_by("-created_at")[:10])
    snapshots = list(device.snapshots.order_by("-taken_at")[:20])
    return render(
        request,
        "dashboard/device_detail.html",
        {
            "section": "devices",
            "device": device,
            "effective": effective,
            "member_groups": list(device.groups.all()),
            "runs": runs,
            "commands": commands,
            "snapshots": snapshots,
            "all_groups": DeviceGroup.objects.only("id", "name")
            if can(request.user, "device.edit")
            else [],
            "restore_form": _restore_form(snapshots),
            "now": timezone.now(),
            "suspicious_snapshots": observed.suspicious_for(device),
            # issue 15: was the last copy point-in-time, and which files have none
            "open_files": openfiles.point_in_time(
                next((r.stats for r in runs if r.kind == "backup"), {})
            ),
            "unprotected_files": openfiles.unprotected_files(device),
        },
    )


def _restore_form(snapshots, data=None):
    form = RestoreForm(data)
    form.fields["snapshot_id"].choices = [
        (s.snapshot_id, f"{s.taken_at:%Y-%m-%d %H:%M} · {s.snapshot_id[:12]}") for s in snapshots
    ]
    return form


@require_POST
@require("view")
def device_bulk(request):
    """One action on the devices ticked in the list (at most one page's worth)."""
    action = request.POST.get("action", "")
    capability = BULK_ACTIONS.get(action)
    if capability is None:
        messages.error(request, "Choose an action.")
    elif not can(request.user, capability):
        raise PermissionDenied
    target = _next_url(request, "device-list")
    if capability is None:
        return redirect(target)
    ids = []
    for value in request.POST.getlist("ids")[:500]:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    devices = list(Device.objects.filter(pk__in=ids, revoked=False).order_by("hostname"))
    if not devices:
        messages.error(request, "Tick at least one active device.")
        return redirect(target)
    actor = _actor(request)
    if action == "add_to_group":
        group = DeviceGroup.objects.filter(pk=request.POST.get("group") or 0).first()
        if group is None:
            messages.error(request, "Choose a group.")
            return redirect(target)
        fleet.add_devices_to_group(actor, group, devices)
        messages.success(request, f"{len(devices)} device(s) added to {group.name}.")
    else:
        jobs.request_for_devices(actor, action, devices)
        verb = "Backup" if action == "backup" else "Verification"
        messages.success(request, f"{verb} requested for {len(devices)} device(s).")
    return redirect(target)


def _request_command(request, pk, request_fn, verb: str):
    device = get_object_or_404(Device, pk=pk)
    try:
        request_fn(_actor(request), device)
        messages.success(request, f"{verb} requested for {device.hostname}.")
    except PermissionDenied as exc:
        messages.error(request, str(exc))
    return redirect("device-detail", pk=pk)


@require_POST
@require("device.backup")
def device_backup(request, pk):
    return _request_command(request, pk, jobs.request_backup, "Backup")


@require_POST
@require("device.verify")
def device_verify(request, pk):
    return _request_command(request, pk, jobs.request_verify, "Verification")


@require("device.restore")
def device_restore(request, pk):
    device = get_object_or_404(Device, pk=pk)
    snapshots = list(device.snapshots.order_by("-taken_at")[:50])
    form = _restore_form(snapshots, request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        with _errors_onto(form, PermissionDenied):
            jobs.request_restore(
                _actor(request),
                device,
                d["snapshot_id"],
                paths=d["paths"].splitlines(),
                target=d["target"],
                overwrite=d["overwrite"],
            )
            messages.success(request, f"Restore requested for {device.hostname}.")
            return redirect("device-detail", pk=pk)
    return render(
        request,
        "dashboard/device_restore.html",
        {"section": "devices", "device": device, "form": form},
    )


@require_POST
@require("device.revoke")
def device_revoke(request, pk):
    device = get_object_or_404(Device, pk=pk)
    fleet.revoke_device(_actor(request), device, reason=request.POST.get("reason", ""))
    messages.success(
        request, f"{device.hostname} is revoked; it will be refused at its next connection."
    )
    return redirect("device-detail", pk=pk)


@require_POST
@require("device.edit")
def device_groups(request, pk):
    device = get_object_or_404(Device, pk=pk)
    ids = [int(i) for i in request.POST.getlist("groups") if i.isdigit()]
    fleet.set_device_groups(_actor(request), device, list(DeviceGroup.objects.filter(pk__in=ids)))
    messages.success(request, f"Groups of {device.hostname} updated.")
    return redirect("device-detail", pk=pk)


# --- groups ---------------------------------------------------------------------------------


@require("view")
def group_list(request):
    form = GroupForm(request.POST or None)
    if request.method == "POST":
        if not can(request.user, "group.manage"):
            raise PermissionDenied
        if form.is_valid():
            with _errors_onto(form):
                group = fleet.create_group(
                    _actor(request), form.cleaned_data["name"], form.cleaned_data["description"]
                )
                messages.success(request, f"Group {group.name} created.")
                return redirect("group-list")
    groups = DeviceGroup.objects.annotate(
        n_devices=Count("devices", distinct=True)
    ).prefetch_related(Prefetch("assignments", PolicyAssignment.objects.select_related("policy")))
    return render(
        request, "dashboard/groups.html", {"section": "groups", "groups": groups, "form": form}
    )


@require("view")
def group_detail(request, pk):
    group = get_object_or_404(DeviceGroup, pk=pk)
    form = GroupForm(
        request.POST or None, initial={"name": group.name, "description": group.description}
    )
    if request.method == "POST":
        if not can(request.user, "group.manage"):
            raise PermissionDenied
        if request.POST.get("action") == "delete":
            fleet.delete_group(_actor(request), group)
            messages.success(request, f"Group {group.name} deleted.")
            return redirect("group-list")
        if request.POST.get("action") == "add_devices":
            names = [
                n.strip()
                for n in request.POST.get("hostnames", "").replace(",", "\n").splitlines()
                if n.strip()
            ]
            devices = Device.objects.filter(hostname__in=names, revoked=False)
            added = fleet.add_devices_to_group(_actor(request), group, devices)
            messages.success(request, f"{added} device(s) added to {group.name}.")
            return redirect("group-detail", pk=pk)
        if form.is_valid():
            with _errors_onto(form):
                fleet.update_group(
                    _actor(request),
                    group,
                    form.cleaned_data["name"],
                    form.cleaned_data["description"],
                )
                messages.success(request, "Group saved.")
                return redirect("group-detail", pk=pk)
    assignments = group.assignments.select_related("policy", "policy__current_revision")
    devices = Paginator(group.devices.order_by("hostname"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "dashboard/group_detail.html",
        {
            "section": "groups",
            "group": group,
            "form": form,
            "assignments": assignments,
            "page": devices,
        },
    )


# --- policies ------------------------------------------------------------------------------


@require("view")
def policy_list(request):
    items = Policy.objects.select_related("current_revision").prefetch_related(
        Prefetch("assignments", PolicyAssignment.objects.select_related("group"))
    )
    rollout = {}
    for row in policies.rollout_progress():
        rollout.setdefault(row["policy"].pk, []).append(row)
    rows = [{"policy": p, "rollout": rollout.get(p.pk, [])} for p in items]
    return render(request, "dashboard/policies.html", {"section": "policies", "rows": rows})


def _policy_form_context(form, policy=None):
    return {
        "section": "policies",
        "form": form,
        "policy": policy,
        "known_folders": specs.KNOWN_FOLDERS,
        "exclude_reasons": specs.EXCLUDE_REASONS,
        "always_included": specs.ALWAYS_INCLUDED_NOTE,
    }


@require("policy.manage")
def policy_create(request):
    return _policy_form_page(request)


@require("policy.manage")
def policy_edit(request, pk):
    policy = get_object_or_404(Policy.objects.select_related("current_revision"), pk=pk)
    return _policy_form_page(request, policy)


def _policy_form_page(request, policy=None):
    """The policy form: a new policy (``policy`` None) or a new revision of ``policy``."""
    if request.method == "POST":
        form = PolicyForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            args = (d["name"], form.to_spec())
            options = {"description": d["description"], "comment": d["comment"]}
            try:
                if policy is None:
                    policy = policies.create_policy(_actor(request), *args, **options)
                    saved = f"Policy {policy.name} saved as revision 1."
                else:
                    policies.update_policy(_actor(request), policy, *args, **options)
                    policy.refresh_from_db()
                    saved = (
                        f"Policy {policy.name} saved (revision {policy.current_revision.number})."
                    )
            except policies.PolicyValidationError as exc:
                form.add_spec_errors(exc.errors)
            else:
                messages.success(request, saved)
                return redirect("policy-detail", pk=policy.pk)
    else:
        revision = policy.current_revision if policy else None
        spec = revision.spec if revision else specs.default_spec()
        name, description = (policy.name, policy.description) if policy else ("", "")
        form = PolicyForm(initial=PolicyForm.initial_from(name, description, spec))
    return render(request, "dashboard/policy_form.html", _policy_form_context(form, policy))


@require("view")
def policy_detail(request, pk):
    policy = get_object_or_404(Policy.objects.select_related("current_revision"), pk=pk)
    assign_form = AssignForm(request.POST or None)
    if request.method == "POST":
        if not can(request.user, "policy.manage"):
            raise PermissionDenied
        if request.POST.get("action") == "delete":
            try:
                policies.delete_policy(_actor(request), policy)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
                return redirect("policy-detail", pk=pk)
            messages.success(request, f"Policy {policy.name} deleted.")
            return redirect("policy-list")
        if assign_form.is_valid():
            with _errors_onto(assign_form):
                policies.assign_policy(
                    _actor(request),
                    policy,
                    assign_form.cleaned_data["group"],
                    assign_form.cleaned_data["precedence"],
                )
                messages.success(
                    request, f"{policy.name} assigned to {assign_form.cleaned_data['group'].name}."
                )
                return redirect("policy-detail", pk=pk)
    revisions = list(policy.revisions.select_related("created_by").order_by("-number")[:50])
    assignments = list(
        policy.assignments.select_related("group").annotate(n_devices=Count("group__devices"))
    )
    return render(
        request,
        "dashboard/policy_detail.html",
        {
            "section": "policies",
            "policy": policy,
            "revisions": revisions,
            "assignments": assignments,
            "assign_form": assign_form,
            "rollout": policies.rollout_progress(policy),
            "spec": policy.current_revision.spec if policy.current_revision else {},
            "exclude_reasons": specs.EXCLUDE_REASONS,
        },
    )


@require_POST
@require("policy.manage")
def assignment_remove(request, pk):
    assignment = get_object_or_404(
        PolicyAssignment.objects.select_related("policy", "group"), pk=pk
    )
    policy_pk = assignment.policy_id
    policies.unassign_policy(_actor(request), assignment)
    messages.success(
        request, f"{assignment.policy.name} no longer applies to {assignment.group.name}."
    )
    return redirect("policy-detail", pk=policy_pk)


@require("view")
def revision_detail(request, pk, number):
    revision = get_object_or_404(
        PolicyRevision.objects.select_related("policy", "created_by"), policy_id=pk, number=number
    )
    against = request.GET.get("against")
    if against and against.isdigit():
        other = get_object_or_404(PolicyRevision, policy_id=pk, number=int(against))
        diff = specs.diff_specs(other.spec, revision.spec)
    else:
        other = revision.policy.revisions.filter(number__lt=number).order_by("-number").first()
        diff = specs.diff_specs(other.spec if other else None, revision.spec)
    return render(
        request,
        "dashboard/revision.html",
        {
            "section": "policies",
            "revision": revision,
            "other": other,
            "diff": diff,
            "spec_json": json.dumps(revision.spec, indent=2, sort_keys=True),
            "numbers": revision.policy.revisions.order_by("-number").values_list(
                "number", flat=True
            ),
        },
    )


# --- jobs -------------------------------------------------------------------------------


@require("view")
def job_list(request):
    state, kind = request.GET.get("state", ""), request.GET.get("kind", "")
    device_q = request.GET.get("device", "").strip()
    qs = job_queries.job_runs(state=state, kind=kind, hostname=device_q)
    qs = qs.order_by("-started_at", "-pk")
    running = list(
        JobRun.objects.filter(state=JobState.RUNNING)
        .select_related("device")
        .order_by("-started_at")[:50]
    )
    context = {
        "section": "jobs",
        "page": Window(qs, request),
        "running": running,
        "states": JobState.choices,
        "kinds": JobKind.choices,
        "state": state,
        "kind": kind,
        "device_q": device_q,
        "qs": _params_without_page(request),
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
    }
    return render(request, template, context)


@require("view")
def command_list(request):
    state, kind = request.GET.get("state", ""), request.GET.get("kind", "")
    qs = job_queries.commands(state=state, kind=kind).order_by("-created_at")
    return render(
        request,
        "dashboard/commands.html",
        {
            "section": "jobs",
            "page": Window(qs, request),
            "states": CommandState.choices,
            "kinds": CommandKind.choices,
            "state": state,
            "kind": kind,
            "qs": _params_without_page(request),
        },
    )


@require_POST
@require("device.backup")
def command_cancel(request, pk):
    command = get_object_or_404(Command, pk=pk)
    try:
        jobs.cancel_command(_actor(request), command)
        messages.success(request, "Cancellation requested.")
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    return redirect(_next_url(request, "command-list"))


# --- enrollment ---------------------------------------------------------------------------


@never_cache  # the page shows a new token's secret once
@require("token.view")
def token_list(request):
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST":
        if not can(request.user, "token.manage"):
            raise PermissionDenied
        if form.is_valid():
            d = form.cleaned_data
            with _errors_onto(form):
                token, plaintext = fleet.create_enrollment_token(
                    _actor(request),
                    d["name"],
                    d["group"],
                    expires_in=timedelta(days=d["expires_days"]),
                    max_uses=d["max_uses"],
                )
                created = {"token": token, "plaintext": plaintext}
                form = TokenForm()
    tokens = EnrollmentToken.objects.select_related("group", "created_by").annotate(
        n_devices=Count("device")
    )
    return render(
        request,
        "dashboard/tokens.html",
        {
            "section": "enrollment",
            "tokens": tokens,
            "form": form,
            "created": created,
            "now": timezone.now(),
        },
    )


@require_POST
@require("token.manage")
def token_revoke(request, pk):
    token = get_object_or_404(EnrollmentToken, pk=pk)
    fleet.revoke_enrollment_token(_actor(request), token)
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("token-list")


# --- audit --------------------------------------------------------------------------------


def _audit_filter(request):
    f = {
        k: request.GET.get(k, "").strip()
        for k in ("actor", "action", "target", "via", "since", "until")
    }
    qs = audit_events(
        actor=f["actor"],
        action=f["action"],
        target=f["target"],
        via=f["via"],
        from_day=parse_date(f["since"] or ""),
        to_day=parse_date(f["until"] or ""),
    )
    return qs.order_by("-at", "-id"), f


@require("audit.view")
def audit_list(request):
    qs, f = _audit_filter(request)
    actions = sorted(
        {
            a.split(".")[0]
            for a in AuditEvent.objects.values_list("action", flat=True).distinct()[:200]
        }
    )
    return render(
        request,
        "dashboard/audit.html",
        {
            "section": "audit",
            "page": Window(qs, request),
            "f": f,
            "actions": actions,
            "vias": AuditEvent.Via.choices,
            "qs": _params_without_page(request),
        },
    )


@require("audit.view")
def audit_detail(request, pk):
    event = get_object_or_404(AuditEvent, pk=pk)
    return render(request, "dashboard/audit_detail.html", {"section": "audit", "event": event})


# --- storage ------------------------------------------------------------------------------


@require("storage.view")
def storage_page(request):
    return render(
        request,
        "dashboard/storage.html",
        {
            "section": "storage",
            "targets": StorageTarget.objects.all(),
            "org_key": storage.org_key_status(),
            "used": storage.storage_used(),
        },
    )


@require("storage.manage")
def storage_edit(request, pk=None):
    target = get_object_or_404(StorageTarget, pk=pk) if pk else None
    initial = {}
    if target:
        initial = {f: getattr(target, f) for f in storage.PUBLIC_FIELDS}
    form = StorageTargetForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if request.POST.get("action") == "delete" and target:
            storage.delete_storage_target(_actor(request), target)
            messages.success(request, f"Storage target {target.name} deleted.")
            return redirect("storage")
        if form.is_valid():
            with _errors_onto(form):
                saved = storage.save_storage_target(_actor(request), form.cleaned_data, target)
                messages.success(request, f"Storage target {saved.name} saved.")
                return redirect("storage")
    return render(
        request,
        "dashboard/storage_form.html",
        {"section": "storage", "form": form, "target": target},
    )


@require_POST
@require("storage.manage")
def org_key_record(request):
    storage.record_org_key(_actor(request))
    messages.success(request, "Organisation key fingerprint recorded.")
    return redirect("storage")


# --- users --------------------------------------------------------------------------------


@require("user.manage")
def user_list(request):
    User = get_user_model()
    users = list(User.objects.order_by("username").prefetch_related("groups"))
    return render(
        request,
        "dashboard/users.html",
        {
            "section": "users",
            "users": [(u, role_of(u)) for u in users],
            "roles": [(r, ROLE_DESCRIPTIONS[r]) for r in ROLES],
        },
    )


@require("user.manage")
def user_edit(request, pk=None):
    User = get_user_model()
    user = get_object_or_404(User, pk=pk) if pk else None
    initial = (
        {"username": user.username, "email": user.email, "role": role_of(user) or ""}
        if user
        else {}
    )
    form = UserForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        with _errors_onto(form):
            saved = save_user(
                _actor(request), d["username"], d["role"] or None, d["email"], d["password"], user
            )
            if saved.pk == request.user.pk:
                # A password change signs out the user's other sessions, not this one.
                update_session_auth_hash(request, saved)
            messages.success(request, f"User {d['username']} saved.")
            return redirect("user-list")
    return render(
        request, "dashboard/user_form.html", {"section": "users", "form": form, "edited": user}
    )


@require_POST
@require("user.manage")
def user_revoke_token(request, pk):
    user = get_object_or_404(get_user_model(), pk=pk)
    revoked = accounts.revoke_api_token(_actor(request), user)
    messages.success(
        request, f"API token of {user.username} revoked." if revoked else "No API token to revoke."
    )
    return redirect("user-edit", pk=pk)


@require_POST
@require("user.manage")
def user_set_active(request, pk):
    user = get_object_or_404(get_user_model(), pk=pk)
    active = request.POST.get("active") == "1"
    try:
        accounts.set_user_active(_actor(request), user, active)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{user.username} {'reactivated' if active else 'deactivated'}.")
    return redirect("user-edit", pk=pk)


@require_POST
@require("user.manage")
def user_unlock(request, pk):
    user = get_object_or_404(get_user_model(), pk=pk)
    lockout.unlock_user(_actor(request), user)
    messages.success(request, f"Sign-in of {user.username} unlocked.")
    return redirect("user-edit", pk=pk)


# --- CSV reports (the same filters as the pages) ------------------------------------------


class _Echo:
    def write(self, value):
        return value


def _csv_response(filename: str, header: list[str], rows) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def stream():
        yield writer.writerow(header)
        for row in rows:
            # Host names, user names, errors: chosen by agents or callers.
            yield writer.writerow(safe_row(row))

    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{filename}-{stamp}.csv"'
    return response


def _iso(value) -> str:
    return value.isoformat() if value else ""


@require("view")
def device_export(request):
    """The device list, as filtered on the page, as CSV (protection report)."""
    flt = DeviceFilter.from_params(request.GET)
    qs = flt.apply().select_related("effective_policy", "effective_revision")
    now = timezone.now()
    header = [
        "hostname", "os", "os_version", "user", "status", "last_success_at",
        "last_backup_at", "last_seen_at", "last_backup_failed", "consecutive_failures",
        "last_error", "policy", "revision", "policy_applied", "storage_bytes",
        "agent_version", "device_id",
    ]  # fmt: skip
    rows = (
        [
            d.hostname,
            d.os,
            d.os_version,
            d.owner,
            d.protection(now),
            _iso(d.last_success_at),
            _iso(d.last_backup_at),
            _iso(d.last_seen_at),
            d.failing,
            d.consecutive_failures,
            d.last_error,
            d.effective_policy.name if d.effective_policy else "",
            d.effective_revision.number if d.effective_revision else "",
            d.policy_in_sync,
            d.storage_bytes,
            d.agent_version,
            str(d.pk),
        ]  # fmt: skip
        for d in qs.iterator(chunk_size=2000)
    )
    return _csv_response("cairn-devices", header, rows)


@require("audit.view")
def audit_export(request):
    """The audit log, as filtered on the page, as CSV."""
    qs, _ = _audit_filter(request)
    header = ["at", "user", "action", "target_type", "target_id", "target", "via",
              "source_address", "before", "after"]  # fmt: skip
    rows = (
        [
            _iso(e.at),
            e.actor_name,
            e.action,
            e.target_type,
            e.target_id,
            e.target_repr,
            e.via,
            e.source_address or "",
            json.dumps(e.before, sort_keys=True) if e.before is not None else "",
            json.dumps(e.after, sort_keys=True) if e.after is not None else "",
        ]  # fmt: skip
        for e in qs.iterator(chunk_size=2000)
    )
    return _csv_response("cairn-audit", header, rows)
