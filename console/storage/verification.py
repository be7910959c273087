"""Server-side verification and test restores of device repositories (issue 17).

Both run on the console's Celery workers with the console's own storage
access (``targets.admin_store``) and the organisation key, like maintenance:
they work for PCs that are offline, asleep or lost, take no CPU, disk or
bandwidth from the PC, and prove what matters: that the data can be restored
*without the device*. Nothing is written to local disk.

* **Verification** (JobRun kind ``verify``) checks the structure every run
  (indexes, snapshots, every tree, every file's chunks present, pack sizes)
  and reads whole a rotating share of the packs: packs are taken in pack-id
  order from a per-device cursor (``VerificationState``), at most
  ``sample_percent`` of them per run, and runs are spaced so that a cycle
  through all packs ends within ``every_days``: ``ceil(100 / sample_percent)``
  runs per ``every_days``. Damage (a pack that does not hash to its name, a
  blob that does not decrypt or hash back to its id) is mapped by the
  engine's check to the files of every snapshot that references it.
* **Test restore** (kind ``test_restore``) picks a random sample of files
  from the newest snapshot, reads every chunk through the repository
  (decrypt, decompress), re-hashes it with the repository's keyed hash and
  compares it with the chunk id, and compares the total with the file size;
  bytes stay in memory one chunk at a time. It records duration and
  throughput: the measured restore time the compliance report shows.

Both record ``stats`` with exactly these keys (the reports read them):
``bytes_read, objects_checked, damaged (pack ids), damaged_files ([{snapshot,
path}]), duration_s, throughput_bps, files_compared``; what was read is
described in ``progress_detail``. The repository's size (sum of the objects
under the device's prefix) is measured on each verification and stored on
the device (``Device.storage_bytes``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor

from celery import current_app
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from agent.engine.check import run_check
from agent.engine.repository import Repository
from console.audit.services import Actor, record
from console.core import keys
from console.fleet.models import Device
from console.jobs.models import JobKind, JobRun, JobState, JobTrigger
from console.policies.services import effective_policy_for_device
from console.storage import targets
from console.storage.models import VerificationState
from console.storage.sampled_restore import test_restore_device
from console.storage.verification_results import latest, summary
from console.storage.verification_runs import (
    FILE_DAMAGE,
    MAX_LISTED,
    MAX_PATH,
    STATS_KEYS,
    finish_run,
    run_stats,
    start_run,
    throughput,
)

# Callers (tasks, views, API, tests) reach the whole feature through this module.
__all__ = [
    "STATS_KEYS",
    "due",
    "interval",
    "latest",
    "repository_bytes",
    "request_verify",
    "still_due",
    "summary",
    "test_restore_device",
    "verify_device",
]

log = logging.getLogger(__name__)


# --- schedule -------------------------------------------------------------------------


def interval(every_days: int, sample_percent: int) -> dt.timedelta | None:
    """Time between two verifications of a device: ``ceil(100 / sample_percent)``
    runs per ``every_days`` (None: the policy turns verification off)."""
    if every_days <= 0:
        return None
    runs = math.ceil(100 / max(1, min(100, sample_percent)))
    return dt.timedelta(days=every_days) / runs


def _verification(device: Device):
    eff = effective_policy_for_device(device)
    return eff, (eff.settings.verification if eff.settings is not None else None)


def due(now: dt.datetime | None = None) -> list[tuple[str, str]]:
    """(device id, "verify" | "test_restore") for every not revoked device
    whose policy's verification is due. The effective policy is merged once
    per distinct effective hash, not once per device."""
    now = now or timezone.now()
    states = {s.device_id: s for s in VerificationState.objects.all()}
    by_hash: dict[str, object] = {}
    out = []
    for device in Device.objects.filter(revoked=False).order_by("pk"):
        key = device.effective_hash
        if not key or key not in by_hash:
            _eff, v = _verification(device)
            if key:
                by_hash[key] = v
        else:
            v = by_hash[key]
        for kind in (JobKind.VERIFY, JobKind.TEST_RESTORE):
            if _is_due(v, states.get(device.pk), kind, now):
                out.append((str(device.pk), kind.value))
    return out


def _is_due(v, state: VerificationState | None, kind: str, now: dt.datetime) -> bool:
    if v is None or (step := interval(v.every_days, v.sample_percent)) is None:
        return False
    if kind == JobKind.VERIFY:
        last = state.last_verify_at if state else None
    else:
        last, step = (
            (state.last_test_restore_at if state else None),
            dt.timedelta(days=v.every_days),
        )
    return last is None or last + step <= now


def still_due(device_id: str, kind: str, now: dt.datetime | None = None) -> bool:
    """Checked again when a scheduled task runs: a queue that backed up over
    several beats holds the same device more than once, and only the first
    of them runs."""
    device = Device.objects.get(pk=device_id)
    _eff, v = _verification(device)
    state = VerificationState.objects.filter(device=device).first()
    return not device.revoked and _is_due(v, state, kind, now or timezone.now())


def request_verify(actor: Actor, device: Device) -> JobRun:
    """The console's Verify button: a verification now (audited), run by a
    worker; the JobRun is returned at once, running."""
    if device.revoked:
        raise PermissionDenied(f"{device.hostname} is revoked.")
    run = start_run(device, JobKind.VERIFY, JobTrigger.MANUAL)
    if run is None:
        run = JobRun.objects.filter(
            device=device, kind=JobKind.VERIFY, state=JobState.RUNNING
        ).first()
        return run
    record(actor, "device.verify", device, after={"job": run.pk, "where": "console"})
    transaction.on_commit(lambda: _queue("storage.verify_device", str(device.pk), run.pk))
    return run


def _queue(task_name: str, *args) -> None:
    """Queued by name (console/storage/tasks.py defines it; the web process
    need not have imported it)."""
    current_app.send_task(task_name, args=list(args))


# --- verification run -------------------------------------------------------------------


def repository_bytes(store) -> tuple[int, int]:
    """(bytes, objects) stored under the device's prefix: the repository's
    real size, measured by the console."""
    keys_ = list(store.list(""))
    with ThreadPoolExecutor(max_workers=8) as pool:
        sizes = list(pool.map(store.size, keys_))
    return sum(sizes), len(keys_)


def _rotation(present: list[str], cursor: str, sample_percent: int) -> tuple[list[str], str]:
    """The packs this run reads (in id order after ``cursor``, at most
    ``sample_percent`` of them, at least one) and the new cursor ("" when
    the cycle is complete)."""
    if not present:
        return [], ""
    share = max(1, math.ceil(len(present) * max(1, min(100, sample_percent)) / 100))
    after = [p for p in present if p > cursor] if cursor else present
    batch = after[:share]
    new_cursor = "" if len(after) <= share else batch[-1]
    return batch, new_cursor


def verify_device(
    device_id: str,
    *,
    run_id: int | None = None,
    trigger: str = JobTrigger.SCHEDULE,
    now: dt.datetime | None = None,
) -> JobRun | None:
    """Verify the device's repository (see the module docstring)."""
    device = Device.objects.get(pk=device_id)
    run = _verify_run(device, run_id, trigger)
    if run is None or run.state != JobState.RUNNING:  # a task delivered twice: done already
        return run
    now = now or timezone.now()
    _eff, v = _verification(device)
    sample_percent = v.sample_percent if v is not None else 5
    state, _ = VerificationState.objects.get_or_create(device=device)
    store = None
    t0 = time.monotonic()
    try:
        store = targets.admin_store(targets.target(), str(device.pk))
        repo = Repository.open(store, key=keys.org_key())
        size, nobjects = repository_bytes(store)
        present = sorted(
            {k.rsplit("/", 1)[-1] for k in store.list("data/")} & repo.index.named_pack_ids()
        )
        batch, new_cursor = _rotation(present, state.cursor, sample_percent)
        report = run_check(repo, read_data=True, packs=batch)
        stats, detail = _verify_results(report, batch, round(time.monotonic() - t0, 3))
        detail.update(
            packs_total=len(present),
            sample_percent=sample_percent,
            cycle_complete=new_cursor == "",
            repository_bytes=size,
            repository_objects=nobjects,
        )
        with transaction.atomic():
            _advance_cursor(state, run, new_cursor, now)
            Device.objects.filter(pk=device.pk).update(storage_bytes=size)
            return finish_run(run, stats, detail, problems=len(report.errors))
    except Exception as exc:  # recorded on the run (never left running); the beat moves on
        log.warning("verification of %s failed: %s", device_id, exc)
        seconds = round(time.monotonic() - t0, 3)
        return finish_run(run, run_stats(duration_s=seconds), {}, str(exc) or type(exc).__name__)
    finally:
        if store is not None:
            store.close()


def _verify_run(device: Device, run_id: int | None, trigger: str) -> JobRun | None:
    """The run to record on: the one the Verify button created, or a new one
    (None: another verification of the device is running)."""
    if run_id:
        return JobRun.objects.get(pk=run_id, kind=JobKind.VERIFY)
    run = start_run(device, JobKind.VERIFY, trigger)
    if run is None:
        log.info("verification of %s skipped: another run is in progress", device.pk)
    return run


def _verify_results(report, batch: list[str], seconds: float) -> tuple[dict, dict]:
    """The run's ``stats`` and the part of its detail that the check found."""
    damaged_packs = sorted(
        {
            e.object.rsplit("/", 1)[-1]
            for e in report.errors
            if e.object and e.object.startswith("data/")
        }
    )
    damaged_files = _damaged_files(report)
    stats = run_stats(
        bytes_read=report.bytes_read,
        objects_checked=len(batch) + report.snapshots + report.trees_checked,
        damaged=damaged_packs[:MAX_LISTED],
        damaged_files=damaged_files[:MAX_LISTED],
        duration_s=seconds,
        throughput_bps=throughput(report.bytes_read, seconds),
    )
    detail = {
        "structure": {
            "snapshots": report.snapshots,
            "trees": report.trees_checked,
            "blobs": report.blobs,
            "packs": report.packs,
        },
        "packs_read": len(batch),
        "problems": [str(e)[:MAX_PATH] for e in report.errors[:50]],
        "problems_total": len(report.errors),
        "damaged_files_total": len(damaged_files),
    }
    return stats, detail


def _advance_cursor(state: VerificationState, run: JobRun, new_cursor: str, now) -> None:
    """The rotation moves on: a new cycle starts when the last one completed."""
    if not state.cursor:
        state.cycle_started_at = now
    state.cursor = new_cursor
    state.last_verify_at = now
    state.last_verify_run = run
    state.save()


def _damaged_files(report) -> list[dict]:
    seen, out = set(), []
    for e in report.errors:
        if e.kind in FILE_DAMAGE and e.snapshot:
            key = (e.snapshot, e.path or "/")
            if key not in seen:
                seen.add(key)
                out.append({"snapshot": e.snapshot, "path": key[1][:MAX_PATH]})
    return out
