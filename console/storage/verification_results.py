"""Reading the results of verifications and test restores for the pages and the API
(console/storage/verification.py writes them)."""

from __future__ import annotations

import math

from console.fleet.models import Device
from console.jobs.models import JobKind, JobRun, JobState
from console.storage.models import VerificationState
from console.storage.verification_runs import MAX_LISTED, MAX_PATH


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _amount(value) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return float(value) if ok and math.isfinite(value) else 0.0


def _text(value, limit: int = MAX_PATH) -> str:
    return value[:limit] if isinstance(value, str) else ""


def summary(run: JobRun) -> dict | None:
    """What a verification or test restore read and found, checked and cut to
    size (a ``verify`` run may also come from an agent: untrusted JSON);
    None for other kinds of job and for runs without these results."""
    if run.kind not in (JobKind.VERIFY, JobKind.TEST_RESTORE):
        return None
    stats = run.stats if isinstance(run.stats, dict) else {}
    if not {"bytes_read", "damaged_files"} <= set(stats):
        return None  # an agent's own check (bulk verify) or a run still going
    raw_files = stats.get("damaged_files")
    files = []
    for f in raw_files[:MAX_LISTED] if isinstance(raw_files, list) else []:
        if isinstance(f, dict) and isinstance(f.get("path"), str):
            files.append({"snapshot": _text(f.get("snapshot"), 128), "path": _text(f["path"])})
    raw_packs = stats.get("damaged")
    packs = [_text(p, 64) for p in (raw_packs[:MAX_LISTED] if isinstance(raw_packs, list) else [])]
    detail = run.progress_detail if isinstance(run.progress_detail, dict) else {}
    return {
        "kind": run.kind,
        "bytes_read": _count(stats.get("bytes_read")),
        "objects_checked": _count(stats.get("objects_checked")),
        "files_compared": _count(stats.get("files_compared")),
        "duration_s": _amount(stats.get("duration_s")),
        "throughput_bps": _count(stats.get("throughput_bps")),
        "damaged": [p for p in packs if p],
        "damaged_files": files,
        "damaged_files_total": max(_count(detail.get("damaged_files_total")), len(files)),
        "packs_read": _count(detail.get("packs_read")),
        "packs_total": _count(detail.get("packs_total")),
        "cycle_complete": detail.get("cycle_complete") is True,
        "repository_bytes": _count(detail.get("repository_bytes")),
        "snapshot": _text(detail.get("snapshot"), 128),
        "ok": run.state == JobState.SUCCEEDED and not files and not packs,
    }


def latest(device: Device) -> dict:
    """The device's last verification and test restore by the console:
    {kind: {"run", "result"}} (one query)."""
    state = (
        VerificationState.objects.filter(device=device)
        .select_related("last_verify_run", "last_test_restore_run")
        .first()
    )
    out = {}
    if state is not None:
        for kind, run in (
            (JobKind.VERIFY.value, state.last_verify_run),
            (JobKind.TEST_RESTORE.value, state.last_test_restore_run),
        ):
            if run is not None and run.finished_at is not None:
                out[kind] = {"run": run, "result": summary(run)}
    return out
