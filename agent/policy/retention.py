"""How many snapshots a policy keeps, per rule (restic's ``forget`` rules,
applied by agent/engine/retention.py on the console's maintenance run).

The stored names are ``keep_last``, ``hourly`` … ``yearly`` and
``keep_within_days``: every revision ever stored uses them, and renaming
them would change every revision's hash.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from agent.policy._fields import Errors, integer, number, section

RETENTION_KEYS = ("keep_last", "hourly", "daily", "weekly", "monthly", "yearly")


@dataclass(frozen=True)
class Retention:
    keep_last: int = number(0, 100000, 10)
    hourly: int = number(0, 100000, 24)
    daily: int = number(0, 100000, 14)
    weekly: int = number(0, 100000, 8)
    monthly: int = number(0, 100000, 12)
    yearly: int = number(0, 100000, 3)
    keep_within_days: int = number(0, 36500, 0)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


DEFAULT = {f.name: f.default for f in fields(Retention)}


def parse_retention(errors: Errors, data: dict) -> Retention:
    raw = section(errors, data, "retention", DEFAULT)
    values = {}
    for f in fields(Retention):
        values[f.name] = integer(
            errors, f"retention.{f.name}", raw.get(f.name), f.metadata["min"], f.metadata["max"]
        )
    if not any(values.values()) and not errors.under("retention"):
        errors.add("retention.keep_last", "Keep at least one snapshot by some rule.")
    return Retention(**{k: v or 0 for k, v in values.items()})
