"""Helpers for the read side of the console's queries. (List filters are
FilterSets: console/core/filters.py and console/<app>/filters.py.)"""

from __future__ import annotations


def chunks(items: list, size: int = 2000):
    """Slices of a list, so IN (...) lists stay within every database's limits."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
