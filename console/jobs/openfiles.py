"""What a backup says about open files (issue 15), read from the job's statistics.

The agent reports, per source, the snapshot it read from (provider, snapshot
ids, seconds held) or why it read live, and the files it stored flagged
``changed-during-read`` (torn). Statistics are untrusted agent JSON: every
value here is checked for type and cut to size before a page or the API
shows it; anything else is ignored.

Two questions an admin asks, answered here:

* "was this copy point-in-time?": ``point_in_time(run)``;
* "is every file of this PC recoverable as a consistent copy within the
  RPO?": ``unprotected_files(device)`` lists the files whose last consistent
  copy is older than the RPO (or not in the history kept), and for how long.
  A backup that stored torn files is "Succeeded with inconsistent files".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from console.jobs.models import JobKind, JobRun, JobState

MAX_SOURCES = 50
MAX_FILES = 100
MAX_TEXT = 500
#: succeeded backups looked back through for a file's last consistent copy
HISTORY_RUNS = 200

INCONSISTENT_LABEL = "Succeeded with inconsistent files"
#: the agent's notice that a source had no snapshot (chooser.py): a fact about
#: the PC, kept on the run's statistics and shown once per device, not counted
#: as a warning of every job
ENVIRONMENT_PREFIX = "no snapshot for "
ENVIRONMENT_SUFFIX = "files read live with consistent-read checks"
MAX_NOTICES = 20


def _text(value, limit: int = MAX_TEXT) -> str:
    return value[:limit] if isinstance(value, str) else ""


def point_in_time(stats) -> dict:
    """{"mode", "summary", "sources": [...]} from a run's statistics; empty
    when the agent sent none (older agents, restores)."""
    raw = stats.get("point_in_time") if isinstance(stats, dict) else None
    if not isinstance(raw, dict):
        return {}
    sources = []
    for entry in raw.get("sources") or []:
        if not isinstance(entry, dict) or len(sources) >= MAX_SOURCES:
            continue
        held = entry.get("held_seconds")
        ids = entry.get("snapshot_ids")
        sources.append(
            {
                "path": _text(entry.get("path")),
                "provider": _text(entry.get("provider"), 32),
                "snapshot_ids": [_text(i) for i in ids[:10] if isinstance(i, str)]
                if isinstance(ids, list)
                else [],
                "held_seconds": float(held)
                if isinstance(held, int | float) and not isinstance(held, bool) and held >= 0
                else None,
                "live": _text(entry.get("live")),
            }
        )
    return {
        "mode": _text(raw.get("mode"), 16),
        "summary": _text(raw.get("summary")),
        "sources": sources,
    }


def inconsistent_files(stats) -> tuple[list[str], int]:
    """(the torn files named, how many there were) from a run's statistics."""
    if not isinstance(stats, dict):
        return [], 0
    raw = stats.get("inconsistent_files")
    files = (
        [_text(p) for p in raw[:MAX_FILES] if isinstance(p, str)] if isinstance(raw, list) else []
    )
    count = stats.get("inconsistent_count")
    if not isinstance(count, int) or isinstance(count, bool) or count < len(files):
        count = len(files)
    return files, count


def split_environment(warnings: list) -> tuple[list, list[str]]:
    """(the real warnings, the environment notices) of a run's warnings."""
    real, notices = [], []
    for w in warnings:
        text = w if isinstance(w, str) else ""
        if text.startswith(ENVIRONMENT_PREFIX) and text.endswith(ENVIRONMENT_SUFFIX):
            if len(notices) < MAX_NOTICES:
                notices.append(text[:MAX_TEXT])
        else:
            real.append(w)
    return real, notices


def environment_notices(stats) -> list[str]:
    """The environment notices kept on a backup's statistics (the device
    page shows its latest backup's, once)."""
    raw = stats.get("environment_notices") if isinstance(stats, dict) else None
    if not isinstance(raw, list):
        return []
    return [_text(n) for n in raw[:MAX_NOTICES] if isinstance(n, str)]


def outcome(run: JobRun) -> str:
    """The job's result as an admin reads it."""
    if run.state == JobState.SUCCEEDED and inconsistent_files(run.stats)[1]:
        return INCONSISTENT_LABEL
    return run.get_state_display()


@dataclass
class UnprotectedFile:
    path: str
    last_consistent: datetime | None  # None: no consistent copy in the history kept
    torn_since: datetime  # the oldest backup in a row that stored it torn
    without_consistent_copy: timedelta  # how long: now - last consistent copy (or torn_since)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "last_consistent_copy": self.last_consistent,
            "torn_since": self.torn_since,
            "seconds_without_consistent_copy": int(self.without_consistent_copy.total_seconds()),
        }


def unprotected_files(device, now: datetime | None = None) -> list[UnprotectedFile]:
    """Files of the device's latest good backup stored torn whose last
    consistent copy is older than the device's RPO (or not in the recent
    history), newest backups first."""
    now = now or timezone.now()
    runs = list(
        JobRun.objects.filter(device=device, kind=JobKind.BACKUP, state=JobState.SUCCEEDED)
        .exclude(finished_at=None)
        .order_by("-finished_at")
        .only("finished_at", "stats")[:HISTORY_RUNS]
    )
    if not runs:
        return []
    latest, _ = inconsistent_files(runs[0].stats)
    out = []
    for path in latest:
        torn_since, last_good = runs[0].finished_at, None
        for run in runs[1:]:
            files, count = inconsistent_files(run.stats)
            if path in files:
                torn_since = run.finished_at
                continue
            if "inconsistent_files" in run.stats and count == len(files):
                # The run listed all its torn files and this was not one.
                last_good = run.finished_at
            break  # an older agent, or a cut list: nothing can be said past it
        if last_good is not None and last_good >= now - device.rpo:
            continue
        out.append(UnprotectedFile(path, last_good, torn_since, now - (last_good or torn_since)))
    return out
