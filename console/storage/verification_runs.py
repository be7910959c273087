"""The JobRuns of the console's verifications and test restores
(console/storage/verification.py): their limits, the ``stats`` every run records
(exactly ``STATS_KEYS``: the reports read them), and starting and finishing a run."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from console.fleet.models import Device
from console.jobs.models import JobKind, JobRun, JobState
from console.policies.services import effective_policy_for_device

#: files compared by one test restore, and the bytes it reads at most
TEST_RESTORE_FILES = 20
TEST_RESTORE_MAX_BYTES = 512 * 1024 * 1024
#: tree entries looked at when sampling files (a huge tree is sampled from its start)
TEST_RESTORE_MAX_NODES = 200_000
#: damaged files / packs kept on a run (the rest are counted in the detail)
MAX_LISTED = 1000
#: chunks fetched at once by a test restore (memory: at most this many chunks)
RESTORE_WINDOW = 8
RESTORE_WORKERS = 4
MAX_PATH = 1024
#: a run of the same kind younger than this is taken to be still running
RUNNING_FOR_AT_MOST = dt.timedelta(hours=12)

#: check problems that lose files (a damaged tree or snapshot: everything under it)
FILE_DAMAGE = ("damaged-data", "missing-data", "damaged-tree", "unsafe-name", "damaged-snapshot")

STATS_KEYS = (
    "bytes_read",
    "objects_checked",
    "damaged",
    "damaged_files",
    "duration_s",
    "throughput_bps",
    "files_compared",
)


def run_stats(**values) -> dict:
    out = {
        "bytes_read": 0,
        "objects_checked": 0,
        "damaged": [],
        "damaged_files": [],
        "duration_s": 0.0,
        "throughput_bps": 0,
        "files_compared": 0,
    }
    out.update(values)
    assert set(out) == set(STATS_KEYS), sorted(out)
    return out


def throughput(nbytes: int, seconds: float) -> int:
    return int(nbytes / seconds) if seconds > 0 else 0


def start_run(device: Device, kind: str, trigger: str) -> JobRun | None:
    eff = effective_policy_for_device(device)
    with transaction.atomic():
        Device.objects.select_for_update().filter(pk=device.pk).first()
        busy = JobRun.objects.filter(
            device=device,
            kind=kind,
            state=JobState.RUNNING,
            started_at__gte=timezone.now() - RUNNING_FOR_AT_MOST,
        ).exists()
        if busy:
            return None
        return JobRun.objects.create(
            device=device,
            kind=kind,
            trigger=trigger,
            policy_revision=eff.revision,
            revision_hash=eff.hash,
            state=JobState.RUNNING,
        )


def finish_run(
    run: JobRun, stats: dict, detail: dict, error: str = "", problems: int = 0
) -> JobRun:
    run.stats = stats
    run.progress_detail = detail
    run.files_processed = stats["files_compared"] or stats["objects_checked"]
    run.progress = 1.0
    if error:
        run.state = JobState.FAILED
        run.error = error.splitlines()[0][:2000] if error.strip() else "failed"
    elif stats["damaged_files"] or stats["damaged"] or problems:
        # the run worked and found damage: shown as failed, with what is damaged
        run.state = JobState.FAILED
        run.error = (
            f"damage found: {len(stats['damaged'])} pack(s), {len(stats['damaged_files'])} file(s)"
        )
        if run.kind == JobKind.TEST_RESTORE:
            run.error = (
                f"damage found: {len(stats['damaged_files'])} of {stats['files_compared']} "
                "file(s) did not restore intact"
            )
        elif problems and not (stats["damaged_files"] or stats["damaged"]):
            run.error = f"damage found: {problems} problem(s) in the repository's structure"
    else:
        run.state = JobState.SUCCEEDED
    run.finished_at = run.updated_at = timezone.now()
    run.save()
    return run
