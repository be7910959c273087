"""Server-side repository maintenance: retention (forget) and prune.

Only the console deletes from object storage (docs/security.md, "Who can
delete what"): it opens each device repository with its own full-rights
storage credentials (``targets.admin_store``) and the organisation key, keeps
what the device's effective policy's retention keeps, and prunes
(agent/engine/prune.py: lock-free, safe while the device backs up), after
promoting the device's offline spool uploads (console/storage/spool.py). Nothing
is written to local disk (no cache directory). Each run is a ``JobRun`` of
kind ``prune`` with the reports in ``stats`` (and the repository's size after
prune, measured and stored on the device); forgotten snapshots are also
in the audit log (``device.forget_snapshots``). Retention decides on the
times the console observed each snapshot, never on the agent-written time
(console/storage/observed.py).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from agent.engine.prune import DEFAULT_GRACE, all_snapshots, delete_snapshots, prune
from agent.engine.repository import Repository
from agent.engine.retention import RetentionPolicy
from console.audit.services import SYSTEM, record
from console.core import keys
from console.fleet.models import Device
from console.holds import services as holds
from console.jobs.models import JobKind, JobRun, JobState, JobTrigger, Snapshot
from console.policies.services import effective_policy_for_device
from console.storage import observed, spool, targets, verification
from console.storage.models import ObservedSnapshot

log = logging.getLogger(__name__)

#: a maintenance run of the same device younger than this is taken to be
#: still running: a second one is skipped (two prunes must not overlap)
RUNNING_FOR_AT_MOST = dt.timedelta(hours=12)
#: a backup reported running (and heard of within this time) holds back the
#: sweep of markers written after it started, whatever their age
BACKUP_ALIVE_WITHIN = dt.timedelta(days=7)
#: agent and console clocks and the order of "index loaded" / "run reported"
CLOCK_MARGIN = dt.timedelta(minutes=15)
#: repack packs more than this share unreferenced (the worker reads and
#: rewrites their live blobs; packs below it keep their waste)
REPACK_ABOVE = 0.5


def running_backup_since(device: Device) -> dt.datetime | None:
    """Start of the device's oldest backup that is still running, as far as
    the console knows (an offline agent's runs show up when it reconnects:
    the grace period covers those)."""
    started = (
        JobRun.objects.filter(
            device=device,
            kind=JobKind.BACKUP,
            state=JobState.RUNNING,
            updated_at__gte=timezone.now() - BACKUP_ALIVE_WITHIN,
        )
        .order_by("started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    return started - CLOCK_MARGIN if started is not None else None


def held_since(device: Device, now: dt.datetime | None = None) -> dt.datetime | None:
    """Prune markers written after this are not swept yet: the start of the
    oldest running backup, or while the device holds an unexpired spool lease,
    the lease's issue (an offline backup may dedup against the packs the agent
    saw when it received the lease)."""
    since = running_backup_since(device)
    issued, expires = device.spool_lease_issued_at, device.spool_lease_expires_at
    if issued is not None and expires is not None and expires > (now or timezone.now()):
        lease = issued - CLOCK_MARGIN
        since = lease if since is None else min(since, lease)
    return since


def devices_due() -> list[str]:
    """Every enrolled, not revoked device (ids as strings). A revoked device's
    repository is left as it is until offboarding deletes it whole
    (console/holds/offboarding.py)."""
    return [str(pk) for pk in Device.objects.filter(revoked=False).values_list("pk", flat=True)]


def _retention(eff) -> RetentionPolicy:
    """The effective policy's retention rules; with no policy there is no rule,
    so nothing is forgotten (prune still runs)."""
    if eff.settings is None:
        return RetentionPolicy()
    return RetentionPolicy.from_policy(eff.settings.retention)


def _start(device: Device, trigger: str, eff) -> JobRun | None:
    with transaction.atomic():
        Device.objects.select_for_update().filter(pk=device.pk).first()
        busy = JobRun.objects.filter(
            device=device,
            kind=JobKind.PRUNE,
            state=JobState.RUNNING,
            started_at__gte=timezone.now() - RUNNING_FOR_AT_MOST,
        ).exists()
        if busy:
            return None
        return JobRun.objects.create(
            device=device,
            kind=JobKind.PRUNE,
            trigger=trigger,
            policy_revision=eff.revision,
            revision_hash=eff.hash,
            state=JobState.RUNNING,
        )


def maintain_device(
    device_id: str,
    *,
    dry_run: bool = False,
    grace: dt.timedelta | None = None,
    trigger: str = JobTrigger.SCHEDULE,
    now: dt.datetime | None = None,
) -> JobRun | None:
    """Forget by the device's retention, then prune; the JobRun recording it
    (None when another maintenance run of the device is still going)."""
    device = Device.objects.get(pk=device_id)
    eff = effective_policy_for_device(device)
    run = _start(device, trigger, eff)
    if run is None:
        log.info("maintenance of %s skipped: another run is in progress", device_id)
        return None
    policy = _retention(eff)
    stats: dict = {"dry_run": dry_run, "retention": policy.to_dict()}
    store = None
    try:
        # Spooled offline uploads first: prune must see the index objects they add.
        stats["spool"] = None if dry_run else spool.promote(str(device.pk), now=now).to_dict()
        store = targets.admin_store(targets.target(), str(device.pk))
        repo = Repository.open(store, key=keys.org_key())
        snaps = all_snapshots(repo)
        rows = observed.observe(device, store, snaps, now=now)
        suspicious = sorted(sid for sid, row in rows.items() if row.suspicious)
        stats["observed"] = {"snapshots": len(rows), "suspicious": suspicious}
        held = holds.held_snapshots(device)  # legal holds: never forgotten
        stats["held"] = "all" if held is None else sorted(held)
        forgotten, stats["forget"] = _forget(repo, snaps, rows, policy, dry_run, now, held)
        preport = prune(
            repo,
            grace=grace or DEFAULT_GRACE,
            dry_run=dry_run,
            now=now,
            running_since=held_since(device, now),
            assume_forgotten=set(forgotten) if dry_run else set(),
            repack_above=REPACK_ABOVE,
        )
        stats["prune"] = {k: v for k, v in preport.to_dict().items() if k != "deleted"}
        if not dry_run:
            # the repository's real size after prune, for storage used (issue 17)
            size, objects = verification.repository_bytes(store)
            stats["repository_bytes"], stats["repository_objects"] = size, objects
            Device.objects.filter(pk=device.pk).update(storage_bytes=size)
        _succeeded(run, device, stats, forgotten if not dry_run else [], preport.warnings)
    except Exception as exc:  # recorded on the run; the beat task moves on
        log.warning("maintenance of %s failed: %s", device_id, exc)
        run.state = JobState.FAILED
        run.stats = stats
        run.error = (str(exc) or type(exc).__name__).splitlines()[0][:2000]
        run.finished_at = run.updated_at = timezone.now()
        run.save()
    finally:
        if store is not None:
            store.close()
    return run


def _forget(
    repo, snaps, rows, policy, dry_run: bool, now, held: set[str] | None = frozenset()
) -> tuple[list[str], dict | None]:
    """The snapshots the retention rules forget (deleted unless a dry run),
    and what the run's statistics say about it. With no policy (or no rule)
    nothing is forgotten; prune still runs. ``held``: snapshot ids under a
    legal hold (console/holds), kept whatever the rules say; ``None``: the
    whole device is held and nothing is forgotten."""
    if policy.empty or held is None:
        return [], None
    # decided on the times the console observed, never the agent's
    decision = observed.decide(snaps, rows, policy, now=now)
    if held:
        decision.keep += [sid for sid in decision.forget if sid in held]
        decision.forget = [sid for sid in decision.forget if sid not in held]
    if not dry_run:
        delete_snapshots(repo, decision.forget, keep=decision.keep)
    return decision.forget, {
        "kept": len(decision.keep),
        "forgotten": len(decision.forget),
        "forgotten_ids": decision.forget,
        "protected_ids": decision.protected,
    }


@transaction.atomic
def _succeeded(run: JobRun, device: Device, stats: dict, forgotten: list[str], warnings) -> None:
    """Drop the rows of the snapshots forgotten (audited), close the run."""
    if forgotten:
        Snapshot.objects.filter(device=device, snapshot_id__in=forgotten).delete()
        ObservedSnapshot.objects.filter(device=device, snapshot_id__in=forgotten).delete()
        record(
            SYSTEM,
            "device.forget_snapshots",
            device,
            after={"snapshots": forgotten, "retention": stats["retention"]},
        )
    run.state = JobState.SUCCEEDED
    run.stats = stats
    run.warnings = [{"kind": "prune", "message": w} for w in warnings]
    run.warnings_count = len(warnings)
    run.progress = 1.0
    run.finished_at = run.updated_at = timezone.now()
    run.save()
