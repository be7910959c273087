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
import random
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

from celery import current_app
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from agent.engine.check import run_check
from agent.engine.errors import CorruptObject, UnsupportedVersion
from agent.engine.repository import Repository
from agent.engine.store import StoreError
from agent.engine.tree import FILE, display_path
from console.audit.services import Actor, record
from console.core import keys
from console.fleet.models import Device
from console.jobs.models import JobKind, JobRun, JobState, JobTrigger
from console.policies.services import effective_policy_for_device
from console.storage import targets
from console.storage.models import VerificationState

log = logging.getLogger(__name__)

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


def _stats(**values) -> dict:
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


def _throughput(nbytes: int, seconds: float) -> int:
    return int(nbytes / seconds) if seconds > 0 else 0


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
    run = _start(device, JobKind.VERIFY, JobTrigger.MANUAL)
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


# --- runs -----------------------------------------------------------------------------


def _start(device: Device, kind: str, trigger: str) -> JobRun | None:
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


def _finish(run: JobRun, stats: dict, detail: dict, error: str = "", problems: int = 0) -> JobRun:
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
    run = (
        JobRun.objects.get(pk=run_id, kind=JobKind.VERIFY)
        if run_id
        else _start(device, JobKind.VERIFY, trigger)
    )
    if run is None:
        log.info("verification of %s skipped: another run is in progress", device_id)
        return None
    if run.state != JobState.RUNNING:  # a task delivered twice: done already
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
        damaged_packs = sorted(
            {
                e.object.rsplit("/", 1)[-1]
                for e in report.errors
                if e.object and e.object.startswith("data/")
            }
        )
        damaged_files = _damaged_files(report)
        seconds = round(time.monotonic() - t0, 3)
        stats = _stats(
            bytes_read=report.bytes_read,
            objects_checked=len(batch) + report.snapshots + report.trees_checked,
            damaged=damaged_packs[:MAX_LISTED],
            damaged_files=damaged_files[:MAX_LISTED],
            duration_s=seconds,
            throughput_bps=_throughput(report.bytes_read, seconds),
        )
        detail = {
            "structure": {
                "snapshots": report.snapshots,
                "trees": report.trees_checked,
                "blobs": report.blobs,
                "packs": report.packs,
            },
            "packs_read": len(batch),
            "packs_total": len(present),
            "sample_percent": sample_percent,
            "cycle_complete": new_cursor == "",
            "repository_bytes": size,
            "repository_objects": nobjects,
            "problems": [str(e)[:MAX_PATH] for e in report.errors[:50]],
            "problems_total": len(report.errors),
            "damaged_files_total": len(damaged_files),
        }
        with transaction.atomic():
            if not state.cursor:
                state.cycle_started_at = now
            state.cursor = new_cursor
            state.last_verify_at = now
            state.last_verify_run = run
            state.save()
            Device.objects.filter(pk=device.pk).update(storage_bytes=size)
            return _finish(run, stats, detail, problems=len(report.errors))
    except Exception as exc:  # recorded on the run (never left running); the beat moves on
        log.warning("verification of %s failed: %s", device_id, exc)
        seconds = round(time.monotonic() - t0, 3)
        return _finish(run, _stats(duration_s=seconds), {}, str(exc) or type(exc).__name__)
    finally:
        if store is not None:
            store.close()


def _damaged_files(report) -> list[dict]:
    seen, out = set(), []
    for e in report.errors:
        if e.kind in FILE_DAMAGE and e.snapshot:
            key = (e.snapshot, e.path or "/")
            if key not in seen:
                seen.add(key)
                out.append({"snapshot": e.snapshot, "path": key[1][:MAX_PATH]})
    return out


# --- test restore ---------------------------------------------------------------------


def _sample_files(repo: Repository, tree: str, count: int, rng: random.Random):
    """A uniform sample (reservoir) of the regular files under ``tree``."""
    chosen: list[tuple[bytes, object]] = []
    seen = 0
    for nodes_seen, (path, node) in enumerate(repo.walk(tree)):
        if nodes_seen >= TEST_RESTORE_MAX_NODES:
            break
        if node.type != FILE:
            continue
        seen += 1
        if len(chosen) < count:
            chosen.append((path, node))
        elif (j := rng.randrange(seen)) < count:
            chosen[j] = (path, node)
    return chosen


def _compare_file(repo: Repository, node, pool: ThreadPoolExecutor) -> tuple[int, str]:
    """(bytes read, problem or "") for one file: every chunk fetched and
    decrypted in memory (``RESTORE_WINDOW`` at a time, by ``pool``'s threads,
    as a restore fetches), re-hashed with the repository's keyed hash and
    compared with its id; the total compared with the file's size."""
    total = 0
    ids = iter(node.chunk_ids)
    window: deque = deque(pool.submit(repo.read_blob, cid) for cid in islice(ids, RESTORE_WINDOW))
    order = iter(node.chunk_ids)
    try:
        while window:
            cid = next(order)
            try:
                data = window.popleft().result()
            except (CorruptObject, StoreError, UnsupportedVersion) as exc:
                return total, str(exc)
            if (following := next(ids, None)) is not None:
                window.append(pool.submit(repo.read_blob, following))
            if repo.blob_id(data) != cid:
                return total, f"chunk {cid.hex()[:16]} does not hash to its id"
            total += len(data)
            del data
    finally:
        for pending in window:
            pending.cancel()
    if total != node.file_size:
        return total, f"restored {total} bytes, the file had {node.file_size}"
    return total, ""


def test_restore_device(
    device_id: str,
    *,
    trigger: str = JobTrigger.SCHEDULE,
    files: int = TEST_RESTORE_FILES,
    now: dt.datetime | None = None,
    seed: int | None = None,
) -> JobRun | None:
    """Restore a random sample of the newest snapshot's files in memory and
    compare them with the stored hashes (see the module docstring)."""
    device = Device.objects.get(pk=device_id)
    run = _start(device, JobKind.TEST_RESTORE, trigger)
    if run is None:
        return None
    now = now or timezone.now()
    rng = random.Random(seed)
    store = None
    t0 = time.monotonic()
    try:
        store = targets.admin_store(targets.target(), str(device.pk))
        repo = Repository.open(store, key=keys.org_key())
        snaps = sorted(repo.snapshots(), key=lambda s: s.time)
        compared, nbytes, chunks, damaged_files, results = 0, 0, 0, [], []
        snapshot = snaps[-1].id if snaps else ""
        if snaps:
            sample = _sample_files(repo, snaps[-1].tree, files, rng)
            pool = ThreadPoolExecutor(RESTORE_WORKERS, thread_name_prefix="cairn-test-restore")
            with pool:
                for path, node in sample:
                    if nbytes >= TEST_RESTORE_MAX_BYTES:
                        break
                    got, problem = _compare_file(repo, node, pool)
                    nbytes += got
                    compared += 1
                    chunks += len(node.chunk_ids)
                    shown = display_path(path)[:MAX_PATH]
                    results.append({"path": shown, "bytes": got, "ok": not problem})
                    if problem:
                        damaged_files.append({"snapshot": snapshot, "path": shown})
                        results[-1]["problem"] = problem[:500]
        seconds = round(time.monotonic() - t0, 3)
        stats = _stats(
            bytes_read=nbytes,
            objects_checked=chunks,
            damaged_files=damaged_files,
            duration_s=seconds,
            throughput_bps=_throughput(nbytes, seconds),
            files_compared=compared,
        )
        detail = {"snapshot": snapshot, "files": results}
        if not snaps:
            detail["note"] = "no snapshot to restore from yet"
        state, _ = VerificationState.objects.get_or_create(device=device)
        state.last_test_restore_at = now
        state.last_test_restore_run = run
        state.save(update_fields=["last_test_restore_at", "last_test_restore_run"])
        return _finish(run, stats, detail)
    except Exception as exc:  # recorded on the run (never left running); the beat moves on
        log.warning("test restore of %s failed: %s", device_id, exc)
        seconds = round(time.monotonic() - t0, 3)
        return _finish(run, _stats(duration_s=seconds), {}, str(exc) or type(exc).__name__)
    finally:
        if store is not None:
            store.close()


# so that pytest does not collect the service function as a test
test_restore_device.__test__ = False  # type: ignore[attr-defined]


# --- reading the results (pages, API) ---------------------------------------------------


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _num(value) -> float:
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
        "bytes_read": _int(stats.get("bytes_read")),
        "objects_checked": _int(stats.get("objects_checked")),
        "files_compared": _int(stats.get("files_compared")),
        "duration_s": _num(stats.get("duration_s")),
        "throughput_bps": _int(stats.get("throughput_bps")),
        "damaged": [p for p in packs if p],
        "damaged_files": files,
        "damaged_files_total": max(_int(detail.get("damaged_files_total")), len(files)),
        "packs_read": _int(detail.get("packs_read")),
        "packs_total": _int(detail.get("packs_total")),
        "cycle_complete": detail.get("cycle_complete") is True,
        "repository_bytes": _int(detail.get("repository_bytes")),
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
