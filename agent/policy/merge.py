"""Precedence merge: the policies that apply to one device, first = highest
precedence, into one effective policy that says where each value came from.

The highest-precedence policy decides every setting; excludes accumulate (a
lower-precedence policy can add excludes but never remove one). The result
is itself a valid policy, and its canonical hash is what the agent reports
back as applied. ``defined_in`` maps each field path (``"schedule.every_hours"``)
to the label of the policy it came from, and each exclude
(``"excludes[*.iso]"``) to the first policy that listed it, as Kopia's
policy tree says "defined in" for each effective value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.policy import Policy


@dataclass(frozen=True)
class Merged:
    policy: Policy
    defined_in: dict[str, str] = field(default_factory=dict)


def leaf_paths(obj, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf field of a contract dataclass."""
    out: list[str] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and f.name != "window":
            out += leaf_paths(value, path + ".")
        else:
            out.append(path)
    return out


def merge(layers: Sequence[tuple[str, Policy]]) -> Merged | None:
    """``layers``: (label, policy), highest precedence first. None when empty."""
    if not layers:
        return None
    label, first = layers[0]
    defined_in = {path: label for path in leaf_paths(first) if path != "excludes"}
    excludes: list[str] = []
    for layer_label, policy in layers:
        for pattern in policy.excludes:
            if pattern not in excludes:
                excludes.append(pattern)
                defined_in[f"excludes[{pattern}]"] = layer_label
    return Merged(dataclasses.replace(first, excludes=tuple(excludes)), defined_in)
