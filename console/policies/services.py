"""Business rules of policies: save (a new immutable revision), assign to
groups with a precedence, compute each device's effective policy, roll it out.

Effective policy of a device: the policies assigned to any of its groups,
ordered by precedence (lower number first; ties broken by the older
assignment). The first decides every setting; excludes accumulate
(agent/policy/merge.py). Its hash is the SHA-256 of the
merged canonical spec: the agent reports the hash it runs, and the console
counts a device as *acknowledged* when the two match.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Q

from agent import policy as contract
from agent.policy.merge import merge
from console.audit.services import SYSTEM, Actor, record
from console.core.queries import chunks
from console.fleet.models import AT_RISK_FACTOR, DEFAULT_RPO, Device, DeviceGroup
from console.jobs.models import JobRun
from console.jobs.services import queue_apply_policy
from console.policies import origin
from console.policies import spec as specs
from console.policies.models import Policy, PolicyAssignment, PolicyRevision


class PolicyValidationError(ValidationError):
    """Field-level errors: ``.errors`` maps a dotted path to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__(errors)


@dataclass
class Effective:
    policy: Policy | None
    revision: PolicyRevision | None
    spec: dict
    hash: str
    rpo: timedelta
    contributors: list[tuple[Policy, PolicyRevision, DeviceGroup, int]] = field(
        default_factory=list
    )
    settings: contract.Policy | None = None  # the typed effective policy
    # field path -> "policy name (group, precedence)" it comes from
    defined_in: dict[str, str] = field(default_factory=dict)


def _validate(name: str, spec_data, policy: Policy | None = None) -> dict:
    spec, errors = specs.validate_spec(spec_data)
    name = (name or "").strip()
    if not name:
        errors.setdefault("name", []).append("This field is required.")
    elif len(name) > 120:
        errors.setdefault("name", []).append("At most 120 characters.")
    else:
        clash = Policy.objects.filter(name__iexact=name)
        if policy is not None:
            clash = clash.exclude(pk=policy.pk)
        if clash.exists():
            errors.setdefault("name", []).append(f"A policy named {name!r} already exists.")
    if errors:
        raise PolicyValidationError(errors)
    return spec


def _new_revision(policy: Policy, spec: dict, actor: Actor, comment: str) -> PolicyRevision:
    last = policy.revisions.order_by("-number").values_list("number", flat=True).first() or 0
    revision = PolicyRevision.objects.create(
        policy=policy,
        number=last + 1,
        spec=spec,
        hash=specs.spec_hash(spec),
        comment=comment[:255],
        created_by=actor.user,
    )
    policy.current_revision = revision
    policy.updated_at = revision.created_at
    policy.save(update_fields=["current_revision", "updated_at"])
    return revision


@transaction.atomic
def create_policy(
    actor: Actor, name: str, spec_data, description: str = "", comment: str = ""
) -> Policy:
    spec = _validate(name, spec_data)
    policy = Policy.objects.create(name=name.strip(), description=description)
    revision = _new_revision(policy, spec, actor, comment or "Created")
    record(
        actor,
        "policy.create",
        policy,
        after={
            "name": policy.name,
            "revision": revision.number,
            "hash": revision.hash,
            "spec": spec,
        },
    )
    return policy


@transaction.atomic
def update_policy(
    actor: Actor, policy: Policy, name: str, spec_data, description: str = "", comment: str = ""
) -> Policy:
    """Save a policy: a new revision when the spec changed, then roll it out."""
    policy = Policy.objects.select_for_update().get(pk=policy.pk)
    spec = _validate(name, spec_data, policy)
    current = policy.current_revision
    before = {
        "name": policy.name,
        "description": policy.description,
        "revision": current.number if current else None,
        "hash": current.hash if current else None,
    }
    policy.name, policy.description = name.strip(), description
    policy.save(update_fields=["name", "description"])
    spec_changed = current is None or specs.spec_hash(spec) != current.hash
    if spec_changed:
        revision = _new_revision(policy, spec, actor, comment or "Edited")
    else:
        revision = current
    after = {
        "name": policy.name,
        "description": policy.description,
        "revision": revision.number,
        "hash": revision.hash,
    }
    if spec_changed:
        after["changes"] = specs.diff_specs(current.spec if current else None, spec)
    record(actor, "policy.update", policy, before=before, after=after)
    if spec_changed:
        rollout_policy(policy, actor=actor)
    return policy


@transaction.atomic
def delete_policy(actor: Actor, policy: Policy) -> None:
    """Delete a policy that no group uses and no job history refers to."""
    if policy.assignments.exists():
        raise ValidationError("Unassign the policy from every group before deleting it.")
    if JobRun.objects.filter(policy_revision__policy=policy).exists():
        raise ValidationError("Job history refers to this policy; it cannot be deleted.")
    record(actor, "policy.delete", policy, before={"name": policy.name})
    Policy.objects.filter(pk=policy.pk).update(current_revision=None)
    Policy.objects.filter(pk=policy.pk).delete()  # cascades to its revisions


@transaction.atomic
def assign_policy(
    actor: Actor, policy: Policy, group: DeviceGroup, precedence: int = 100
) -> PolicyAssignment:
    if not 1 <= int(precedence) <= 10000:
        raise ValidationError({"precedence": ["Must be between 1 and 10000."]})
    assignment, created = PolicyAssignment.objects.get_or_create(
        policy=policy, group=group, defaults={"precedence": precedence}
    )
    before = None if created else {"precedence": assignment.precedence}
    if not created:
        assignment.precedence = precedence
        assignment.save(update_fields=["precedence"])
    record(
        actor,
        "policy.assign",
        policy,
        before=before,
        after={"group": group.name, "precedence": precedence},
    )
    rollout_devices(_group_device_ids([group.pk]), actor=actor)
    return assignment


@transaction.atomic
def unassign_policy(actor: Actor, assignment: PolicyAssignment) -> None:
    group_id = assignment.group_id
    record(
        actor,
        "policy.unassign",
        assignment.policy,
        before={"group": assignment.group.name, "precedence": assignment.precedence},
    )
    assignment.delete()
    rollout_devices(_group_device_ids([group_id]), actor=actor)


def _group_device_ids(group_ids) -> list:
    return list(
        Device.groups.through.objects.filter(devicegroup_id__in=group_ids)
        .values_list("device_id", flat=True)
        .distinct()
    )


# --- effective policy -----------------------------------------------------------


def _assignments_by_group() -> dict[int, list[PolicyAssignment]]:
    by_group: dict[int, list[PolicyAssignment]] = defaultdict(list)
    for a in PolicyAssignment.objects.select_related(
        "policy", "policy__current_revision", "group"
    ).filter(policy__current_revision__isnull=False):
        by_group[a.group_id].append(a)
    return by_group


def _effective_for(group_ids, by_group) -> Effective:
    chosen = sorted(
        (a for gid in group_ids for a in by_group.get(gid, ())),
        key=lambda a: (a.precedence, a.created_at, a.pk),
    )
    seen: set[int] = set()
    contributors = []
    for a in chosen:
        if a.policy_id in seen:
            continue
        seen.add(a.policy_id)
        contributors.append((a.policy, a.policy.current_revision, a.group, a.precedence))
    if not contributors:
        return Effective(None, None, {}, "", DEFAULT_RPO)
    merged = merge(
        [
            (origin.label(p, g, prec), specs.load_revision(rev.spec, rev.hash))
            for p, rev, g, prec in contributors
        ]
    )
    settings = merged.policy
    policy, revision = contributors[0][0], contributors[0][1]
    return Effective(
        policy,
        revision,
        settings.to_dict(),
        settings.canonical_hash(),
        timedelta(hours=settings.rpo_hours),
        contributors,
        settings=settings,
        defined_in=merged.defined_in,
    )


def effective_policy_for_device(device: Device) -> Effective:
    """The device's effective policy, computed now (device page; gateway's
    apply-policy payload)."""
    group_ids = list(device.groups.values_list("pk", flat=True))
    return _effective_for(group_ids, _assignments_by_group())


@transaction.atomic
def rollout_devices(device_ids, *, actor: Actor = SYSTEM, send_commands: bool = True) -> int:
    """Recompute the effective policy of these devices; for each whose hash
    changed, store it and (if send_commands) queue an apply-policy command.
    Returns how many devices changed. Bulk: devices are grouped by their set
    of groups, and each distinct set is computed once."""
    device_ids = list(device_ids)
    if not device_ids:
        return 0
    by_group = _assignments_by_group()
    memberships: dict = defaultdict(set)
    current: dict = {}
    for chunk in chunks(device_ids):
        for dev_id, gid in Device.groups.through.objects.filter(device_id__in=chunk).values_list(
            "device_id", "devicegroup_id"
        ):
            memberships[dev_id].add(gid)
        for row in Device.objects.filter(pk__in=chunk, revoked=False).values(
            "pk", "effective_hash", "effective_revision_id", "rpo"
        ):
            current[row["pk"]] = row
    by_signature: dict[frozenset, list] = defaultdict(list)
    for dev_id in current:
        by_signature[frozenset(memberships.get(dev_id, ()))].append(dev_id)
    changed: list = []
    for signature, ids in by_signature.items():
        eff = _effective_for(signature, by_group)
        revision_id = eff.revision.pk if eff.revision else None
        stale = [i for i in ids if current[i]["effective_hash"] != eff.hash]
        outdated = [
            i
            for i in ids
            if current[i]["effective_hash"] != eff.hash
            or current[i]["effective_revision_id"] != revision_id
            or current[i]["rpo"] != eff.rpo
        ]
        for chunk in chunks(outdated):
            Device.objects.filter(pk__in=chunk).update(
                effective_policy=eff.policy,
                effective_revision=eff.revision,
                effective_hash=eff.hash,
                rpo=eff.rpo,
                protected_until=F("last_success_at") + eff.rpo,
                at_risk_until=F("last_success_at") + eff.rpo * AT_RISK_FACTOR,
            )
        if eff.hash:
            changed.extend((i, eff) for i in stale)
    if send_commands and changed:
        queue_apply_policy(changed, actor=actor)
    return len(changed)


def drifted(device_ids) -> list[tuple[str, str]]:
    """(device id, effective hash) of the enrolled devices among these whose
    acknowledged revision differs from their target (the gateway re-sends)."""
    out: list[tuple[str, str]] = []
    for chunk in chunks([str(d) for d in device_ids], 500):
        out += [
            (str(pk), digest)
            for pk, digest in Device.objects.filter(pk__in=chunk, revoked=False)
            .exclude(effective_hash="")
            .exclude(applied_hash=F("effective_hash"))
            .values_list("pk", "effective_hash")
        ]
    return out


def converge_policies(batch: int = 2000) -> int:
    """Every enrolled device's effective policy recomputed and rolled out
    where it changed (beat: catches changes made outside the services)."""
    ids = list(Device.objects.filter(revoked=False).values_list("pk", flat=True))
    return sum(rollout_devices(chunk) for chunk in chunks(ids, batch))


def rollout_policy(policy: Policy, *, actor: Actor = SYSTEM) -> int:
    group_ids = list(policy.assignments.values_list("group_id", flat=True))
    return rollout_devices(_group_device_ids(group_ids), actor=actor)


def rollout_progress(policy: Policy | None = None) -> list[dict]:
    """Per revision that is some device's effective revision: targeted and
    acknowledged counts (acknowledged = the agent reports the effective hash)."""
    qs = Device.objects.filter(revoked=False, effective_revision__isnull=False)
    if policy is not None:
        qs = qs.filter(effective_policy=policy)
    rows = (
        qs.values("effective_revision", "effective_policy")
        .annotate(
            targeted=Count("pk"),
            acknowledged=Count("pk", filter=Q(applied_hash=F("effective_hash"))),
        )
        .order_by("effective_policy", "-effective_revision")
    )
    rows = list(rows)
    revisions = PolicyRevision.objects.select_related("policy").in_bulk(
        [r["effective_revision"] for r in rows]
    )
    out = []
    for r in rows:
        rev = revisions.get(r["effective_revision"])
        if rev is None:
            continue
        pct = round(100 * r["acknowledged"] / r["targeted"]) if r["targeted"] else 0
        out.append(
            {
                "policy": rev.policy,
                "revision": rev,
                "targeted": r["targeted"],
                "acknowledged": r["acknowledged"],
                "percent": pct,
            }
        )
    return out


def revision_diff(revision: PolicyRevision) -> list[dict]:
    previous = (
        PolicyRevision.objects.filter(policy=revision.policy, number__lt=revision.number)
        .order_by("-number")
        .first()
    )
    return specs.diff_specs(previous.spec if previous else None, revision.spec)
