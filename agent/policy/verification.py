"""How often a device's repository is verified and how much data is read back."""

from __future__ import annotations

from dataclasses import dataclass, fields

from agent.policy._fields import Errors, integer, number, section


@dataclass(frozen=True)
class Verification:
    every_days: int = number(0, 365, 7)  # 0 = never
    sample_percent: int = number(1, 100, 5)


DEFAULT = {f.name: f.default for f in fields(Verification)}


def parse_verification(errors: Errors, data: dict) -> Verification:
    raw = section(errors, data, "verification", DEFAULT)
    values = {
        f.name: integer(
            errors, f"verification.{f.name}", raw.get(f.name), f.metadata["min"], f.metadata["max"]
        )
        for f in fields(Verification)
    }
    return Verification(**{k: v if v is not None else 0 for k, v in values.items()})
