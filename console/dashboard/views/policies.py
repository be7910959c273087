"""Policies, their revisions and their assignments to groups."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console.accounts.roles import can, require
from console.dashboard.forms import (
    AssignForm,
    PolicyForm,
)
from console.dashboard.views.common import (
    actor,
    errors_onto,
)
from console.policies import services as policies
from console.policies import spec as specs
from console.policies.models import Policy, PolicyAssignment, PolicyRevision


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
                    policy = policies.create_policy(actor(request), *args, **options)
                    saved = f"Policy {policy.name} saved as revision 1."
                else:
                    policies.update_policy(actor(request), policy, *args, **options)
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
                policies.delete_policy(actor(request), policy)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
                return redirect("policy-detail", pk=pk)
            messages.success(request, f"Policy {policy.name} deleted.")
            return redirect("policy-list")
        if assign_form.is_valid():
            with errors_onto(assign_form):
                policies.assign_policy(
                    actor(request),
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
    policies.unassign_policy(actor(request), assignment)
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
