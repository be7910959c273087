"""What a backup does about files other programs hold open: read them from a
point-in-time volume snapshot (required or preferred) or directly
(agent/snapshots/chooser.py applies it)."""

from __future__ import annotations

from agent.policy._fields import Errors

OPEN_FILE_MODES = {
    "required": "Snapshot required — skip the run if no volume snapshot is possible",
    "preferred": "Snapshot preferred — fall back to a consistent read",
    "off": "Off — read files directly",
}
DEFAULT = "preferred"


def parse_open_files(errors: Errors, data: dict) -> str:
    mode = data.get("open_files", DEFAULT)
    if not isinstance(mode, str) or mode not in OPEN_FILE_MODES:  # {} or [] is not hashable
        errors.add("open_files", "Choose required, preferred or off.")
        return DEFAULT
    return mode
