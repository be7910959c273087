"""Helpers for the read side of list pages and API lists, where a filter
left blank means "any"."""

from __future__ import annotations

from typing import Any


def given(**lookups: Any) -> dict[str, Any]:
    """The queryset lookups whose value was given (``qs.filter(**given(...))``)."""
    return {k: v for k, v in lookups.items() if v}


def choice(value: str | None, choices) -> str | None:
    """``value`` if it is one of ``choices`` (a TextChoices), else None: an
    unknown value (a stale link, a typo) filters nothing."""
    return value if value in choices.values else None


def chunks(items: list, size: int = 2000):
    """Slices of a list, so IN (...) lists stay within every database's limits."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
