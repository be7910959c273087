"""Where each effective setting of a device comes from - "defined in", as
Kopia's policy tree says it for each effective value.

The precedence merge (agent/policy/merge.py) labels every field path of the
effective policy with the policy it was taken from; this module turns those
labels back into the policy and group that contributed them, with the value,
for the device page and the API. It reads an ``Effective``
(console/policies/services.py) and imports nothing from the services, which
use ``label`` to name the merge's layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: how the device page names a top-level section of the policy
SECTIONS = {
    "sources": "Sources",
    "excludes": "Excludes",
    "schedule": "Schedule",
    "rpo_hours": "RPO (hours)",
    "retention": "Retention",
    "limits": "Limits",
    "open_files": "Open files",
    "verification": "Verification",
}


def label(policy, group, precedence: int) -> str:
    """The merge's name for one contributing assignment."""
    return f"{policy.name} ({group.name}, precedence {precedence})"


@dataclass(frozen=True)
class Origin:
    policy_id: int
    policy_name: str
    group_id: int
    group_name: str
    precedence: int


@dataclass(frozen=True)
class EffectiveSetting:
    setting: str  # field path: "schedule.every_hours", "excludes[*.iso]"
    value: Any  # as in the effective policy's JSON
    origin: Origin


@dataclass
class SectionRow:
    """One line of the device page: a section's values from one policy."""

    section: str
    values: list[tuple[str, str]]  # (field, value as shown)
    origin: Origin
    # rows of the same origin in a run: the first spans them (n), the rest 0
    span: int = 1


def effective_settings(effective) -> list[EffectiveSetting]:
    """Every value of the effective policy with the assignment it comes from,
    in the contract's field order, excludes last in merge order."""
    origins = {
        label(p, g, prec): Origin(p.pk, p.name, g.pk, g.name, prec)
        for p, _rev, g, prec in effective.contributors
    }
    out = []
    for path, source in effective.defined_in.items():
        origin = origins.get(source)
        if origin is None:  # cannot happen while services label with label()
            continue
        out.append(EffectiveSetting(path, _value(effective.spec, path), origin))
    return out


def _value(spec: dict, path: str) -> Any:
    if path.startswith("excludes["):
        return path[len("excludes[") : -1]
    value: Any = spec
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def section_rows(effective) -> list[SectionRow]:
    """The device page's view: one row per section and contributing policy
    (excludes gathered per policy), so a section taken whole from one policy
    reads as one line, and the origin named once per run of rows."""
    rows: list[SectionRow] = []
    for item in effective_settings(effective):
        section, _, field = item.setting.partition(".")
        if section.startswith("excludes["):
            section, field = "excludes", ""
        name = SECTIONS.get(section, section)
        shown = (field.replace("_", " "), show(item.value))
        last = rows[-1] if rows else None
        if last is not None and last.section == name and last.origin == item.origin:
            last.values.append(shown)
        else:
            rows.append(SectionRow(name, [shown], item.origin))
    first = None
    for row in rows:
        if first is not None and first.origin == row.origin:
            first.span += 1
            row.span = 0
        else:
            first = row
    return rows


def show(value: Any) -> str:
    """A value as an admin reads it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {show(v)}" for k, v in value.items())
    return str(value)
