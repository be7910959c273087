"""Shared pieces of the policy contract: field declarations and value checks.

Every leaf field of the policy is declared with :func:`number`, :func:`flag`,
:func:`choice` or :func:`strings`, which record its bounds, enum or pattern
in the field's metadata. The checks below read the same numbers, and the
console's OpenAPI schema is generated from them (console/policies/schema.py),
so a bound is written once.

Errors are collected by dotted field path (``"schedule.every_hours"``), each
path with a list of messages, so a form, the API and the agent all refuse the
same policy in the same words.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

TIME_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"
_TIME_RE = re.compile(TIME_PATTERN)

#: metadata key: the field was added after the first stored format. A
#: revision stored before it existed loads with the field unset (None) and
#: its canonical form leaves it out, so the revision's hash does not change.
ADDED_LATER = "added_later"


def number(lo: int, hi: int, default: int | None, *, nullable: bool = False, later: bool = False):
    meta = {"min": lo, "max": hi, "nullable": nullable, ADDED_LATER: later}
    return dataclasses.field(default=default, metadata=meta)


def flag(default: bool):
    return dataclasses.field(default=default, metadata={})


def choice(options: dict[str, str], default: str):
    return dataclasses.field(default=default, metadata={"enum": tuple(options)})


def strings(default: tuple[str, ...] = (), *, pattern: str | None = None):
    meta = {"pattern": pattern} if pattern else {}
    return dataclasses.field(default=default, metadata=meta)


def text(*, pattern: str, default: str = ""):
    return dataclasses.field(default=default, metadata={"pattern": pattern})


def bounds(cls, name: str) -> tuple[int, int]:
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
    return meta["min"], meta["max"]


def to_dict(obj) -> dict[str, Any]:
    """A contract dataclass as its stored JSON shape (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None and f.metadata.get(ADDED_LATER):
            continue
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


class Errors(dict):
    """Messages by dotted field path. ``strict``: new input from an admin, in
    which a key the contract does not know is an error (stored revisions are
    read as they were written)."""

    strict = False

    def add(self, path: str, message: str) -> None:
        self.setdefault(path, []).append(message)

    def under(self, prefix: str) -> bool:
        return any(k == prefix or k.startswith(prefix + ".") for k in self)


def section(errors: Errors, data: dict, key: str, defaults: dict) -> dict:
    """``data[key]`` as an object over its defaults (absent or null = defaults)."""
    value = data.get(key, defaults)
    if value is None:
        value = {}
    if not isinstance(value, dict):
        errors.add(key, "Must be an object.")
        return dict(defaults)
    if errors.strict:
        for unknown in sorted(set(value) - set(defaults), key=str):
            errors.add(f"{key}.{unknown}", "Unknown field.")
    return {**defaults, **value}


def integer(
    errors: Errors, path: str, value: Any, lo: int, hi: int, *, allow_none: bool = False
) -> int | None:
    if value is None or value == "":
        if not allow_none:
            errors.add(path, "This field is required.")
        return None
    if isinstance(value, bool):
        errors.add(path, "Enter a whole number.")
        return None
    try:
        result = int(value)
        if isinstance(value, float) and result != value:
            raise ValueError
    except (TypeError, ValueError):
        errors.add(path, "Enter a whole number.")
        return None
    if not lo <= result <= hi:
        errors.add(path, f"Must be between {lo} and {hi}.")
        return None
    return result


def boolean(errors: Errors, path: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    # Form posts and query strings: the spellings a checkbox or a CLI sends.
    if value in ("true", "on", "1", 1):
        return True
    if value in ("false", "off", "0", 0, None, ""):
        return False
    errors.add(path, "Must be true or false.")
    return False


def string_list(errors: Errors, path: str, value: Any) -> tuple[str, ...]:
    """A list of non-empty, stripped, distinct strings (a text block: one per line)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.splitlines()
    if not isinstance(value, list | tuple):
        errors.add(path, "Must be a list of strings.")
        return ()
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            errors.add(path, "Must be a list of strings.")
            return ()
        if "\x00" in item:
            # PostgreSQL cannot store NUL in jsonb: refuse it here, by field.
            errors.add(path, f"{item!r} contains a NUL character.")
            continue
        item = item.strip()
        if item and item not in out:
            out.append(item)
    return tuple(out)


def time_of_day(errors: Errors, path: str, value: Any) -> str | None:
    if not isinstance(value, str) or not _TIME_RE.match(value.strip()):
        errors.add(path, f"{value!r} is not a time of day (HH:MM, 24-hour).")
        return None
    return value.strip()
