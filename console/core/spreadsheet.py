"""CSV cells that a spreadsheet cannot execute.

Every CSV the console exports goes through ``safe_row``: text an agent or an
anonymous caller chose (a host name, a failed login's user name) must reach
the auditor's spreadsheet as text, never as a live formula (OWASP "CSV
injection"). A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is prefixed with a single quote, which spreadsheets show as
text and do not evaluate. Numbers stay numbers: only strings are touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [safe_cell(value) for value in row]
