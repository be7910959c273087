"""The policy contract: one typed policy shared by the console and the agent.

A policy is a frozen :class:`Policy` made of one part per concern, each in
its own module (as Kopia's snapshot/policy): :mod:`~agent.policy.sources`
(folders per OS, known folders, default excludes), :mod:`~agent.policy.
schedule`, :mod:`~agent.policy.retention`, :mod:`~agent.policy.limits`
(bandwidth, CPU, priority, battery, metered), :mod:`~agent.policy.openfiles`,
:mod:`~agent.policy.verification`; :mod:`~agent.policy.merge` merges the
policies of a device by precedence and :mod:`~agent.policy.knownfolders`
resolves known folders on a PC. Nothing here imports Django.

* :func:`parse` checks and normalises what an admin wrote (a form, the API,
  ``seed_demo``): defaults fill what is missing, lists are stripped and
  de-duplicated, times sorted. It raises :class:`PolicyError` whose
  ``errors`` map a dotted field path (``"retention.daily"``,
  ``"sources.windows"``) to messages.
* :func:`load` reads what was stored or sent (a revision, the agent's
  apply-policy payload) without re-judging it by rules added later, and with
  fields added later left unset, so ``load(stored).canonical_hash()`` is the
  hash the revision was stored with.
* :meth:`Policy.to_dict` is the stored JSON shape; :meth:`Policy.canonical_hash`
  the SHA-256 of its canonical JSON, the revision hash agents acknowledge.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.policy._fields import Errors, bounds, choice, integer, number, to_dict
from agent.policy.limits import Limits, parse_limits
from agent.policy.openfiles import OPEN_FILE_MODES, parse_open_files
from agent.policy.retention import Retention, parse_retention
from agent.policy.schedule import Schedule, Window, parse_schedule
from agent.policy.sources import DEFAULT_PATTERNS, Sources, parse_excludes, parse_sources
from agent.policy.verification import Verification, parse_verification

__all__ = [
    "Limits",
    "Policy",
    "PolicyError",
    "Retention",
    "Schedule",
    "Sources",
    "Verification",
    "Window",
    "canonical_json",
    "default_policy",
    "load",
    "parse",
]

FieldErrors = dict[str, list[str]]


class PolicyError(ValueError):
    """A policy that cannot be used: ``errors`` maps field paths to messages."""

    def __init__(self, errors: FieldErrors):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in sorted(errors.items())))


@dataclass(frozen=True)
class Policy:
    sources: Sources = field(default_factory=Sources)
    excludes: tuple[str, ...] = DEFAULT_PATTERNS
    schedule: Schedule = field(default_factory=Schedule)
    # A device is protected while its last good backup is younger than this.
    rpo_hours: int = number(1, 24 * 90, 24)
    retention: Retention = field(default_factory=Retention)
    limits: Limits = field(default_factory=Limits)
    open_files: str = choice(OPEN_FILE_MODES, "preferred")
    verification: Verification = field(default_factory=Verification)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def canonical_json(self) -> str:
        return canonical_json(self.to_dict())

    def canonical_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


TOP_LEVEL = frozenset(Policy.__dataclass_fields__)


def canonical_json(spec: Mapping[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _build(data: Any, *, stored: bool) -> tuple[Policy | None, FieldErrors]:
    errors = Errors()
    errors.strict = not stored
    if not isinstance(data, Mapping):
        return None, {"spec": ["A policy spec must be a JSON object."]}
    data = dict(data)
    for key in sorted(set(data) - TOP_LEVEL):
        errors.add(key, "Unknown field.")
    sources = parse_sources(errors, data, stored=stored)
    excludes = parse_excludes(errors, data)
    schedule = parse_schedule(errors, data, stored=stored)
    lo, hi = bounds(Policy, "rpo_hours")
    default_rpo = Policy.__dataclass_fields__["rpo_hours"].default
    rpo = integer(errors, "rpo_hours", data.get("rpo_hours", default_rpo), lo, hi)
    if rpo is not None and schedule.every_hours and schedule.every_hours > rpo:
        errors.add(
            "rpo_hours",
            f"The recovery point objective ({rpo} h) is shorter than the backup interval "
            f"({schedule.every_hours} h).",
        )
    policy = Policy(
        sources=sources,
        excludes=excludes,
        schedule=schedule,
        rpo_hours=rpo or default_rpo,
        retention=parse_retention(errors, data),
        limits=parse_limits(errors, data, stored=stored),
        open_files=parse_open_files(errors, data),
        verification=parse_verification(errors, data),
    )
    return (None, dict(errors)) if errors else (policy, {})


def parse(data: Any) -> Policy:
    """Check and normalise a policy written by an admin; PolicyError if unusable."""
    policy, errors = _build(data, stored=False)
    if errors:
        raise PolicyError(errors)
    return policy


def load(data: Any) -> Policy:
    """A stored or transmitted policy (a revision, the agent's payload)."""
    if isinstance(data, Policy):
        return data
    policy, errors = _build(data, stored=True)
    if errors:
        raise PolicyError(errors)
    return policy


def default_policy() -> Policy:
    return Policy()
