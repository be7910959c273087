"""The policy spec's OpenAPI schema, generated from the contract (agent/policy).

The API takes and returns a spec as JSON (validated by the contract in the
service, errors by field path), and its schema is a set of DRF serializers
built here from the contract's dataclasses: one component per part
(``PolicySpec``, ``PolicySources``, ``PolicySchedule``, ``PolicyWindow``,
``PolicyRetention``, ``PolicyLimits``, ``PolicyVerification``), each field
with its type, bounds, enum, pattern, nullability and default, read from the
same field metadata the contract checks against. Nothing is written twice:
a bound changed in agent/policy changes the schema
(tests/console/test_policy_schema.py).

Every field is optional on input (the contract fills defaults) and present
in stored revisions, except ``limits.cpu_percent`` in revisions stored
before it existed.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agent import policy as contract
from agent.policy.openfiles import OPEN_FILE_MODES

_SERIALIZERS: dict[type, type[serializers.Serializer]] = {}

# Rules across fields, which OpenAPI cannot declare: stated in the schema's
# prose, refused by the contract with a message under ``spec.<field path>``.
CROSS_FIELD_RULES = (
    "Rules across fields (a 400 names the field): at least one source on some OS; a "
    "source is a known folder of its OS (optionally followed by a sub-path), ~, or an "
    "absolute path of its OS, without '..' or control characters; every_hours or times, "
    "not both, and one of them; a window's start and end differ; rpo_hours is not below "
    "every_hours; at least one retention rule is above 0."
)

HELP = {
    "sources": "Folders to back up per OS: known folders such as {Documents}, ~, or absolute paths.",
    "excludes": "Glob patterns: * and ? within a folder; a pattern with / matches a folder anywhere.",
    "every_hours": "Back up every N hours (null when times of day are set).",
    "times": "Times of day (HH:MM, local time) instead of an interval.",
    "window": "Starts only inside [start, end) local time; may wrap midnight.",
    "rpo_hours": "Protected while the last good backup is younger than this; not below every_hours.",
    "keep_within_days": "Keep every snapshot this many days back from the newest.",
    "upload_kbps": "Upload limit in kbit/s; 0 = unlimited.",
    "cpu_percent": "CPU ceiling in % of the machine; 0 = none.",
    "open_files": "; ".join(f"{k}: {v}" for k, v in OPEN_FILE_MODES.items()),
    "every_days": "Verify the repository every N days; 0 = never.",
}


def _optional(hint) -> tuple[typing.Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def _scalar(hint, meta, **kwargs) -> serializers.Field:
    if "enum" in meta:
        return serializers.ChoiceField(choices=list(meta["enum"]), **kwargs)
    if hint is bool:
        return serializers.BooleanField(**kwargs)
    if hint is int:
        return serializers.IntegerField(min_value=meta["min"], max_value=meta["max"], **kwargs)
    if "pattern" in meta:
        return serializers.RegexField(meta["pattern"], **kwargs)
    return serializers.CharField(**kwargs)


def _field(f: dataclasses.Field, hint) -> serializers.Field:
    hint, nullable = _optional(hint)
    meta = dict(f.metadata)
    nullable = nullable and not meta.get("added_later")  # absent, never null
    kwargs: dict = {"required": False, "allow_null": nullable}
    if f.name in HELP:
        kwargs["help_text"] = HELP[f.name]
    if dataclasses.is_dataclass(hint):
        return serializer_for(hint)(**kwargs)
    if typing.get_origin(hint) is tuple:
        kwargs.pop("required")  # implied by the default
        # blank folders and patterns are dropped by the contract (a text block's
        # empty lines); a blank time of day is refused
        child = _scalar(str, meta, allow_blank="pattern" not in meta)
        return serializers.ListField(child=child, default=list(f.default), **kwargs)
    if f.default == "":  # no default: part of an object that needs it (a window's ends)
        return _scalar(hint, meta, **{**kwargs, "required": True})
    kwargs.pop("required")
    return _scalar(hint, meta, default=f.default, **kwargs)


def _describe(cls: type) -> str:
    own = cls.__doc__ or ""
    if own.startswith(f"{cls.__name__}("):  # dataclass's generated signature
        own = sys.modules[cls.__module__].__doc__ or ""
    return own.strip().split("\n\n")[0].replace("\n", " ")


def serializer_for(cls: type) -> type[serializers.Serializer]:
    """A serializer describing one contract dataclass (cached per class)."""
    if cls not in _SERIALIZERS:
        hints = typing.get_type_hints(cls)
        attrs = {f.name: _field(f, hints[f.name]) for f in dataclasses.fields(cls)}
        name = "PolicySpec" if cls is contract.Policy else f"Policy{cls.__name__}"
        attrs["__doc__"] = _describe(cls)
        if cls is contract.Policy:
            attrs["__doc__"] += " " + CROSS_FIELD_RULES
        _SERIALIZERS[cls] = type(f"{name}Serializer", (serializers.Serializer,), attrs)
    return _SERIALIZERS[cls]


PolicySpecSerializer = serializer_for(contract.Policy)


@extend_schema_field(PolicySpecSerializer)
class PolicySpecField(serializers.JSONField):
    """A policy spec: JSON in and out, checked by the contract in the service
    (console/policies/services.py) so the form, the API and the agent refuse
    the same policy the same way; documented by PolicySpecSerializer."""
