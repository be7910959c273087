"""Test restores (JobRun kind ``test_restore``, see console/storage/verification.py):
a random sample of the newest snapshot's files restored in memory, every chunk
re-hashed and compared with its id, the duration and throughput recorded."""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

from django.utils import timezone

from agent.engine.errors import CorruptObject, UnsupportedVersion
from agent.engine.repository import Repository
from agent.engine.store import StoreError
from agent.engine.tree import FILE, display_path
from console.core import keys
from console.fleet.models import Device
from console.jobs.models import JobKind, JobRun, JobTrigger
from console.storage import targets
from console.storage.models import VerificationState
from console.storage.verification_runs import (
    MAX_PATH,
    RESTORE_WINDOW,
    RESTORE_WORKERS,
    TEST_RESTORE_FILES,
    TEST_RESTORE_MAX_BYTES,
    TEST_RESTORE_MAX_NODES,
    finish_run,
    run_stats,
    start_run,
    throughput,
)

# the feature's one logger, as before the split
log = logging.getLogger("console.storage.verification")


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
    run = start_run(device, JobKind.TEST_RESTORE, trigger)
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
        stats = run_stats(
            bytes_read=nbytes,
            objects_checked=chunks,
            damaged_files=damaged_files,
            duration_s=seconds,
            throughput_bps=throughput(nbytes, seconds),
            files_compared=compared,
        )
        detail = {"snapshot": snapshot, "files": results}
        if not snaps:
            detail["note"] = "no snapshot to restore from yet"
        state, _ = VerificationState.objects.get_or_create(device=device)
        state.last_test_restore_at = now
        state.last_test_restore_run = run
        state.save(update_fields=["last_test_restore_at", "last_test_restore_run"])
        return finish_run(run, stats, detail)
    except Exception as exc:  # recorded on the run (never left running); the beat moves on
        log.warning("test restore of %s failed: %s", device_id, exc)
        seconds = round(time.monotonic() - t0, 3)
        return finish_run(run, run_stats(duration_s=seconds), {}, str(exc) or type(exc).__name__)
    finally:
        if store is not None:
            store.close()


# so that pytest does not collect the service function as a test
test_restore_device.__test__ = False  # type: ignore[attr-defined]
