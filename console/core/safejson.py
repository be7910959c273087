"""Parsing JSON that someone else wrote (API callers, agents' reports).

``json.loads`` recurses once per nesting level, so ``[[[[…]]]]`` a few
thousand deep raises ``RecursionError``, which nobody catches as bad input
(a 500 on the API, a dropped report in the gateway). Nothing Cairn accepts
is nested more than a handful of levels, so anything deeper than
``MAX_DEPTH`` is refused as bad input, before or after the parser would
have recursed. A NUL character in any string or key is refused too, unless
the caller validates every field itself (the API's serializers answer with
the field's name): PostgreSQL cannot store it in ``text`` or ``jsonb`` (a
database error later, far from the cause).
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class UntrustedJSONError(ValueError):
    """The document is not JSON Cairn accepts; the message says why."""


def _refuse_constant(name: str) -> None:
    raise UntrustedJSONError(f"{name} is not a JSON value")


def check_value(value: Any, *, max_depth: int = MAX_DEPTH, refuse_nul: bool = True) -> None:
    """Refuse nesting deeper than ``max_depth`` and (unless told otherwise)
    NUL in any string or key. Iterative, so it is safe on any parsed value."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if refuse_nul and "\x00" in item:
                raise UntrustedJSONError("a string contains a NUL character (\\u0000)")
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise UntrustedJSONError(f"nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                stack.extend((k, depth) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, refuse_nul: bool = True) -> Any:
    """``json.loads`` for untrusted input: ``UntrustedJSONError`` (a
    ``ValueError``) for anything malformed, too deep, NaN/Infinity or (with
    ``refuse_nul``) with a NUL character."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise UntrustedJSONError(f"nested deeper than {max_depth} levels") from None
    except UntrustedJSONError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise UntrustedJSONError(str(exc)) from None
    check_value(value, max_depth=max_depth, refuse_nul=refuse_nul)
    return value


def clean_text(value: str) -> str:
    """Text an agent sent, storable as is: NUL (which PostgreSQL refuses in
    any text column, failing the whole report again on every retry) becomes
    U+FFFD, visibly replaced. No real path or message contains a NUL."""
    return value.replace("\x00", "\ufffd")
