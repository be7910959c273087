"""The console's names for the policy contract (agent/policy).

The contract itself (typed policy, defaults, validation, merge, hash, known
folders, default excludes) lives in agent/policy, shared with the agent and
importable without Django. This module keeps the dict-shaped helpers the
console's views, demo data and tests use, each a one-line call into it, plus
``diff_specs`` (field-level differences between two stored revisions, for
the revision history pages).
"""

from __future__ import annotations

from typing import Any

from agent import policy as contract
from agent.policy.merge import merge
from agent.policy.openfiles import OPEN_FILE_MODES
from agent.policy.retention import RETENTION_KEYS
from agent.policy.sources import (
    ALWAYS_INCLUDED_NOTE,
    DEFAULT_PATTERNS,
    EXCLUDE_REASONS,
    KNOWN_FOLDERS,
    OSES,
)

__all__ = [
    "ALWAYS_INCLUDED_NOTE",
    "DEFAULT_EXCLUDES",
    "EXCLUDE_REASONS",
    "KNOWN_FOLDERS",
    "OPEN_FILE_MODES",
    "OSES",
    "RETENTION_KEYS",
    "default_spec",
    "diff_specs",
    "load_revision",
    "merge_specs",
    "spec_hash",
    "validate_spec",
]

DEFAULT_EXCLUDES = list(DEFAULT_PATTERNS)


def default_spec() -> dict[str, Any]:
    """The default policy as a (new, mutable) stored-shape dict."""
    return contract.default_policy().to_dict()


def validate_spec(data: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(normalised spec, {}) or ({}, errors by dotted path): contract.parse as dicts."""
    try:
        return contract.parse(data).to_dict(), {}
    except contract.PolicyError as exc:
        return {}, exc.errors


def spec_hash(spec: dict[str, Any]) -> str:
    return contract.load(spec).canonical_hash()


# Revisions are immutable and their hash is their content's: a rollout to many
# devices loads each revision once, not once per device group.
_LOADED: dict[str, contract.Policy] = {}


def load_revision(spec: dict[str, Any], digest: str) -> contract.Policy:
    """A stored revision (``spec``, ``hash``) as a typed policy."""
    policy = _LOADED.get(digest)
    if policy is None:
        if len(_LOADED) > 1024:
            _LOADED.clear()
        policy = _LOADED[digest] = contract.load(spec)
    return policy


def merge_specs(specs: list[dict[str, Any]]) -> dict[str, Any]:
    """Stored specs merged by precedence (first wins; excludes accumulate)."""
    merged = merge([(str(i), contract.load(s)) for i, s in enumerate(specs)])
    return merged.policy.to_dict() if merged else {}


def diff_specs(old: dict[str, Any] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """Field-level differences between two specs: [{path, before, after}]."""
    out: list[dict[str, Any]] = []

    def walk(prefix: str, a: Any, b: Any) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(f"{prefix}.{key}" if prefix else key, a.get(key), b.get(key))
        elif a != b:
            out.append({"path": prefix, "before": a, "after": b})

    walk("", old or {}, new)
    return out
