"""The policy spec: its format, defaults, validation and canonical hash.

A spec is a JSON object; every revision stores a *normalised* spec (all keys
present, defaults filled in), so two specs that mean the same thing hash the
same. Example (the defaults)::

    {
      "sources": {"windows": ["{Documents}", "{Desktop}", ...], "macos": [...], "linux": [...]},
      "excludes": ["~$*", "*.tmp", "*.ost", ...],
      "schedule": {"every_hours": 4, "times": [], "window": null, "catch_up": true},
      "rpo_hours": 24,
      "retention": {"keep_last": 10, "hourly": 24, "daily": 14, "weekly": 8,
                    "monthly": 12, "yearly": 3, "keep_within_days": 0},
      "limits": {"upload_kbps": 0, "cpu_percent": 0, "background_priority": true,
                 "pause_on_battery": true, "pause_on_metered": true},
      "open_files": "preferred",
      "verification": {"every_days": 7, "sample_percent": 5}
    }

``validate_spec(data)`` returns ``(normalised, errors)`` where ``errors`` maps
a dotted field path (``"schedule.every_hours"``, ``"sources.windows"``) to a
list of messages. The form and the API both use it, so the same policy is
refused the same way everywhere.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

from agent.excludes import ALWAYS_INCLUDED_NOTE as AGENT_ALWAYS_INCLUDED_NOTE
from agent.excludes import DEFAULT_EXCLUDES as AGENT_DEFAULT_EXCLUDES
from agent.excludes import DEFAULT_PATTERNS as AGENT_DEFAULT_PATTERNS

OSES = ("windows", "macos", "linux")

# Known-folder tokens per OS, with where the agent resolves them. The agent
# resolves tokens through the OS API (SHGetKnownFolderPath, NSSearchPathFor-
# DirectoriesInDomains, XDG user dirs); these hints are for humans.
KNOWN_FOLDERS: dict[str, dict[str, str]] = {
    "windows": {
        "{UserProfile}": r"%USERPROFILE%",
        "{Documents}": r"%USERPROFILE%\Documents (FOLDERID_Documents)",
        "{Desktop}": r"%USERPROFILE%\Desktop (FOLDERID_Desktop)",
        "{Pictures}": r"%USERPROFILE%\Pictures (FOLDERID_Pictures)",
        "{Downloads}": r"%USERPROFILE%\Downloads (FOLDERID_Downloads)",
        "{Music}": r"%USERPROFILE%\Music (FOLDERID_Music)",
        "{Videos}": r"%USERPROFILE%\Videos (FOLDERID_Videos)",
        "{Favorites}": r"%USERPROFILE%\Favorites (FOLDERID_Favorites)",
        "{OneDrive}": r"%OneDrive%",
        "{AppDataRoaming}": r"%APPDATA%",
        "{OutlookData}": r"Outlook .pst files: Documents\Outlook Files and %LOCALAPPDATA%\Microsoft\Outlook",
    },
    "macos": {
        "{Home}": "~",
        "{Documents}": "~/Documents",
        "{Desktop}": "~/Desktop",
        "{Pictures}": "~/Pictures",
        "{Downloads}": "~/Downloads",
        "{Music}": "~/Music",
        "{Movies}": "~/Movies",
        "{OutlookData}": "~/Library/Group Containers/UBF8T346G9.Office/Outlook",
    },
    "linux": {
        "{Home}": "~",
        "{Documents}": "XDG_DOCUMENTS_DIR (~/Documents)",
        "{Desktop}": "XDG_DESKTOP_DIR (~/Desktop)",
        "{Pictures}": "XDG_PICTURES_DIR (~/Pictures)",
        "{Downloads}": "XDG_DOWNLOAD_DIR (~/Downloads)",
        "{Music}": "XDG_MUSIC_DIR (~/Music)",
        "{Videos}": "XDG_VIDEOS_DIR (~/Videos)",
    },
}

DEFAULT_SOURCES = {
    "windows": ["{Documents}", "{Desktop}", "{Pictures}", "{OutlookData}"],
    "macos": ["{Documents}", "{Desktop}", "{Pictures}", "{OutlookData}"],
    "linux": ["{Documents}", "{Desktop}", "{Pictures}"],
}

# The agent's own default excludes (agent/excludes.py), mirrored verbatim:
# Office owner files (~$*), *.tmp, Outlook .ost caches, temp and cache
# folders, trash. Each has a reason the console shows next to it.
DEFAULT_EXCLUDES = list(AGENT_DEFAULT_PATTERNS)
EXCLUDE_REASONS = dict(AGENT_DEFAULT_EXCLUDES)
ALWAYS_INCLUDED_NOTE = AGENT_ALWAYS_INCLUDED_NOTE

OPEN_FILE_MODES = {
    "required": "Snapshot required — skip the run if no volume snapshot is possible",
    "preferred": "Snapshot preferred — fall back to a consistent read",
    "off": "Off — read files directly",
}

DEFAULT_SPEC: dict[str, Any] = {
    "sources": DEFAULT_SOURCES,
    "excludes": DEFAULT_EXCLUDES,
    "schedule": {"every_hours": 4, "times": [], "window": None, "catch_up": True},
    "rpo_hours": 24,
    "retention": {
        "keep_last": 10,
        "hourly": 24,
        "daily": 14,
        "weekly": 8,
        "monthly": 12,
        "yearly": 3,
        "keep_within_days": 0,
    },
    "limits": {
        "upload_kbps": 0,
        "cpu_percent": 0,  # CPU ceiling, % of the whole machine; 0 = none
        "background_priority": True,
        "pause_on_battery": True,
        "pause_on_metered": True,
    },
    "open_files": "preferred",
    "verification": {"every_days": 7, "sample_percent": 5},
}

RETENTION_KEYS = ("keep_last", "hourly", "daily", "weekly", "monthly", "yearly")
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_TOKEN_RE = re.compile(r"\{[^{}]*\}")

# A source is a known-folder token (optionally followed by a sub-path), "~"
# (the user's home), or an absolute path on the agent's OS. Anything else
# would be resolved against the agent service's working directory, which is
# nobody's intent. Windows: drive-absolute (C:\ or C:/) or UNC (\\server\share);
# a rooted "\x" depends on the current drive, so it is refused too.
_ABSOLUTE = {
    "windows": re.compile(r"^([A-Za-z]:[\\/]|[\\/]{2}[^\\/]+[\\/][^\\/]+)"),
    "macos": re.compile(r"^/"),
    "linux": re.compile(r"^/"),
}
_HOME_RE = re.compile(r"^~([\\/]|$)")
_TOKEN_START_RE = re.compile(r"^\{[^{}]*\}([\\/]|$)")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _source_error(os_name: str, entry: str) -> str | None:
    """Why ``entry`` is not a usable source on ``os_name`` (None when it is)."""
    if _CONTROL_RE.search(entry):
        return f"{entry!r} contains a control character."
    if ".." in re.split(r"[\\/]", entry):
        return f"{entry!r}: '..' is not allowed in a source path."
    if _TOKEN_RE.match(entry):
        if not _TOKEN_START_RE.match(entry):
            return f"{entry!r}: a known folder is followed by nothing or by a path separator."
        return None
    if entry.startswith("{"):
        return None  # an unbalanced brace, reported by the caller
    if _HOME_RE.match(entry) or _ABSOLUTE[os_name].match(entry):
        return None
    example = r"C:\Data" if os_name == "windows" else "/srv/data"
    return (
        f"{entry!r} is not an absolute path on {os_name}: use a known folder such as "
        f"{{Documents}}, ~ for the user's home, or a full path like {example}."
    )


def default_spec() -> dict[str, Any]:
    return copy.deepcopy(DEFAULT_SPEC)


def canonical_json(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


class _Errors(dict):
    def add(self, path: str, message: str) -> None:
        self.setdefault(path, []).append(message)


def _int(
    errors: _Errors, path: str, value: Any, lo: int, hi: int, *, allow_none: bool = False
) -> int | None:
    if value is None or value == "":
        if allow_none:
            return None
        errors.add(path, "This field is required.")
        return None
    if isinstance(value, bool):
        errors.add(path, "Enter a whole number.")
        return None
    try:
        number = int(value)
        if isinstance(value, float) and number != value:
            raise ValueError
    except (TypeError, ValueError):
        errors.add(path, "Enter a whole number.")
        return None
    if not lo <= number <= hi:
        errors.add(path, f"Must be between {lo} and {hi}.")
        return None
    return number


def _bool(errors: _Errors, path: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "on", "1", 1):
        return True
    if value in ("false", "off", "0", 0, None, ""):
        return False
    errors.add(path, "Must be true or false.")
    return False


def _string_list(errors: _Errors, path: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [line for line in value.splitlines()]
    if not isinstance(value, list | tuple):
        errors.add(path, "Must be a list of strings.")
        return []
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            errors.add(path, "Must be a list of strings.")
            return []
        if "\x00" in item:
            # PostgreSQL cannot store NUL in jsonb: refuse it here, by field.
            errors.add(path, f"{item!r} contains a NUL character.")
            continue
        item = item.strip()
        if item and item not in out:
            out.append(item)
    return out


def _time(errors: _Errors, path: str, value: Any) -> str | None:
    if not isinstance(value, str) or not _TIME_RE.match(value.strip()):
        errors.add(path, f"{value!r} is not a time of day (HH:MM, 24-hour).")
        return None
    return value.strip()


def _section(errors: _Errors, data: dict, key: str) -> dict:
    value = data.get(key, DEFAULT_SPEC[key])
    if value is None:
        value = {}
    if not isinstance(value, dict):
        errors.add(key, "Must be an object.")
        return {}
    return {**DEFAULT_SPEC[key], **value}


def validate_spec(data: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Normalise and validate a policy spec. Returns (spec, errors by dotted path)."""
    errors = _Errors()
    if not isinstance(data, dict):
        return {}, {"spec": ["A policy spec must be a JSON object."]}
    unknown = set(data) - set(DEFAULT_SPEC)
    for key in sorted(unknown):
        errors.add(key, "Unknown field.")
    spec: dict[str, Any] = {}

    # sources: per-OS lists of paths or known-folder tokens
    sources_in = data.get("sources", DEFAULT_SOURCES)
    sources: dict[str, list[str]] = {}
    if not isinstance(sources_in, dict):
        errors.add("sources", "Must map each OS (windows, macos, linux) to a list of folders.")
        sources_in = {}
    for key in sorted(set(sources_in) - set(OSES)):
        errors.add("sources", f"Unknown OS {key!r}: use windows, macos or linux.")
    for os_name in OSES:
        path = f"sources.{os_name}"
        entries = _string_list(errors, path, sources_in.get(os_name, []))
        for entry in entries:
            problem = _source_error(os_name, entry)
            if problem:
                errors.add(path, problem)
                continue
            for token in _TOKEN_RE.findall(entry):
                if token not in KNOWN_FOLDERS[os_name]:
                    known = ", ".join(KNOWN_FOLDERS[os_name])
                    errors.add(path, f"{token} is not a known folder on {os_name}. Known: {known}.")
            rest = _TOKEN_RE.sub("", entry)
            if "{" in rest or "}" in rest:
                errors.add(path, f"{entry!r} has an unbalanced brace.")
        sources[os_name] = entries
    if not any(sources.values()) and "sources" not in errors:
        errors.add("sources", "Back up at least one folder on at least one OS.")
    spec["sources"] = sources

    spec["excludes"] = _string_list(errors, "excludes", data.get("excludes", DEFAULT_EXCLUDES))

    # schedule: every N hours, or at times of day; optional allowed window
    sched_in = _section(errors, data, "schedule")
    every = _int(
        errors, "schedule.every_hours", sched_in.get("every_hours"), 1, 168, allow_none=True
    )
    times = []
    raw_times = sched_in.get("times") or []
    if isinstance(raw_times, str):
        raw_times = [t for t in re.split(r"[,\s]+", raw_times) if t]
    if not isinstance(raw_times, list):
        errors.add("schedule.times", "Must be a list of times of day (HH:MM).")
        raw_times = []
    for raw in raw_times:
        t = _time(errors, "schedule.times", raw)
        if t and t not in times:
            times.append(t)
    times.sort()
    if every and times:
        errors.add("schedule.every_hours", "Choose either an interval or times of day, not both.")
    elif (
        not every
        and not times
        and "schedule.every_hours" not in errors
        and "schedule.times" not in errors
    ):
        errors.add("schedule.every_hours", "Set an interval in hours or at least one time of day.")
    window = sched_in.get("window")
    if window in ({}, "", None) or (
        isinstance(window, dict) and not window.get("start") and not window.get("end")
    ):
        window = None
    elif not isinstance(window, dict):
        errors.add("schedule.window", "Must be an object with start and end (HH:MM).")
        window = None
    else:
        start = _time(errors, "schedule.window", window.get("start"))
        end = _time(errors, "schedule.window", window.get("end"))
        if start and end and start == end:
            errors.add("schedule.window", "Start and end of the window must differ.")
        window = {"start": start, "end": end}
    spec["schedule"] = {
        "every_hours": every,
        "times": times,
        "window": window,
        "catch_up": _bool(errors, "schedule.catch_up", sched_in.get("catch_up")),
    }

    rpo = _int(errors, "rpo_hours", data.get("rpo_hours", DEFAULT_SPEC["rpo_hours"]), 1, 24 * 90)
    if rpo is not None and every and every > rpo:
        errors.add(
            "rpo_hours",
            f"The recovery point objective ({rpo} h) is shorter than the backup interval ({every} h).",
        )
    spec["rpo_hours"] = rpo

    ret_in = _section(errors, data, "retention")
    retention: dict[str, Any] = {}
    for key in RETENTION_KEYS:
        retention[key] = _int(errors, f"retention.{key}", ret_in.get(key), 0, 100000)
    retention["keep_within_days"] = _int(
        errors, "retention.keep_within_days", ret_in.get("keep_within_days"), 0, 36500
    )
    if not any(retention.get(k) for k in (*RETENTION_KEYS, "keep_within_days")) and not any(
        k.startswith("retention.") for k in errors
    ):
        errors.add("retention.keep_last", "Keep at least one snapshot by some rule.")
    spec["retention"] = retention

    lim_in = _section(errors, data, "limits")
    spec["limits"] = {
        "upload_kbps": _int(errors, "limits.upload_kbps", lim_in.get("upload_kbps"), 0, 10_000_000),
        "cpu_percent": _int(errors, "limits.cpu_percent", lim_in.get("cpu_percent"), 0, 100),
        "background_priority": _bool(
            errors, "limits.background_priority", lim_in.get("background_priority")
        ),
        "pause_on_battery": _bool(
            errors, "limits.pause_on_battery", lim_in.get("pause_on_battery")
        ),
        "pause_on_metered": _bool(
            errors, "limits.pause_on_metered", lim_in.get("pause_on_metered")
        ),
    }

    mode = data.get("open_files", DEFAULT_SPEC["open_files"])
    if mode not in OPEN_FILE_MODES:
        errors.add("open_files", "Choose required, preferred or off.")
    spec["open_files"] = mode

    ver_in = _section(errors, data, "verification")
    spec["verification"] = {
        "every_days": _int(errors, "verification.every_days", ver_in.get("every_days"), 0, 365),
        "sample_percent": _int(
            errors, "verification.sample_percent", ver_in.get("sample_percent"), 1, 100
        ),
    }
    return spec, dict(errors)


def merge_specs(specs: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the specs of the policies that apply to one device, first = highest precedence.

    The highest-precedence policy decides every setting; excludes accumulate
    (a lower-precedence policy can add excludes but never remove one). The
    result is itself a valid spec.
    """
    if not specs:
        return {}
    merged = copy.deepcopy(specs[0])
    excludes = list(merged.get("excludes", []))
    for other in specs[1:]:
        for pattern in other.get("excludes", []):
            if pattern not in excludes:
                excludes.append(pattern)
    merged["excludes"] = excludes
    return merged


def diff_specs(old: dict[str, Any] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """Field-level differences between two specs: [{path, before, after}]."""
    out: list[dict[str, Any]] = []

    def walk(prefix: str, a: Any, b: Any) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(f"{prefix}.{key}" if prefix else key, a.get(key), b.get(key))
        elif a != b:
            out.append({"path": prefix, "before": a, "after": b})

    walk("", old or {}, new)
    return out
