"""How gently a backup runs: upload bandwidth, a CPU ceiling, background
priority, and pausing on battery or metered networks (applied by the daemon:
agent/throttle.py, agent/priority.py, agent/power.py)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from agent.policy._fields import ADDED_LATER, Errors, boolean, flag, integer, number, section


@dataclass(frozen=True)
class Limits:
    upload_kbps: int = number(0, 10_000_000, 0)  # kbit/s; 0 = unlimited
    # % of the whole machine; 0 = none. None only in revisions stored before
    # the field existed (they mean "no ceiling").
    cpu_percent: int | None = number(0, 100, 0, later=True)
    background_priority: bool = flag(True)
    pause_on_battery: bool = flag(True)
    pause_on_metered: bool = flag(True)

    @property
    def cpu_ceiling(self) -> int:
        return self.cpu_percent or 0

    @property
    def upload_bytes_per_second(self) -> float | None:
        return self.upload_kbps * 1000 / 8 if self.upload_kbps else None

    @property
    def pauses(self) -> bool:
        return self.pause_on_battery or self.pause_on_metered


DEFAULT = {f.name: f.default for f in fields(Limits)}


def parse_limits(errors: Errors, data: dict, *, stored: bool = False) -> Limits:
    defaults = DEFAULT
    if stored:
        defaults = {f.name: f.default for f in fields(Limits) if not f.metadata.get(ADDED_LATER)}
    raw = section(errors, data, "limits", defaults)
    values: dict = {}
    for f in fields(Limits):
        path = f"limits.{f.name}"
        if f.name not in raw:
            values[f.name] = None  # stored before the field existed
        elif "min" in f.metadata:
            values[f.name] = integer(
                errors, path, raw[f.name], f.metadata["min"], f.metadata["max"]
            )
        else:
            values[f.name] = boolean(errors, path, raw[f.name])
    return Limits(**values)
