"""Forget and prune: server-side deletion, safe against concurrent backups
without locks (docs/format.md, "Concurrency and crash safety").

* :func:`forget` deletes the snapshot objects a retention policy does not
  keep. Nothing else: their data stays until a prune reclaims it.
* :func:`prune` is a two-phase mark and sweep:

  1. **sweep** — every ``prune/<id>`` marker older than the grace period:
     recompute what the snapshots that exist *now* reference; condemned packs
     that still hold the only copy of a referenced blob are spared (a backup
     that was running at mark time may have used them); write one new index
     object with every entry of the current index objects except the packs
     to delete; delete the superseded index objects, then the packs, then
     the marker.
  2. **mark** — packs that no snapshot references (indexed packs none of
     whose blobs is referenced, and packs no index object names) go into a
     new marker with the current time. From then on backups do not
     deduplicate against them (``MasterIndex.reusable``), so only backups
     already running at mark time can still refer to them, and those finish
     within the grace period.

  Nothing is deleted in the run that marks it. Space comes back one prune
  run after the grace period. With ``repack_above``, partly used packs
  above that unreferenced share are repacked first: their referenced blobs
  are copied into new packs (indexed), then the old packs are marked like
  unreferenced ones. Otherwise the report gives their unreferenced bytes as
  ``waste_bytes``.

Every step is create-only or deletes only what a written object already
supersedes, so a crash (SIGKILL) at any moment leaves a usable repository,
and the next prune finishes the work.

Like restic's ``PlanPrune``/``Execute``, deciding and acting are apart:
:func:`plan_prune` reads the repository and returns a :class:`PrunePlan`
(what to sweep, repack and mark, with the figures; nothing written, so
``--dry-run`` prints it and tests inspect it), and ``plan.execute()`` does
it. :func:`prune` is both in one call.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from agent.engine.errors import PruneError
from agent.engine.pack import BlobEntry, pack_key
from agent.engine.prune_state import (
    Loaded,
    all_snapshots,
    delete_all,
    header_entries,
    home_packs,
    load,
    sizes,
)
from agent.engine.repack import repack as repack_packs
from agent.engine.repository import PRUNE_AAD, Repository
from agent.engine.retention import RetentionPolicy, RetentionResult, apply_retention
from agent.engine.snapshot import parse_time

__all__ = [
    "DEFAULT_GRACE",
    "ForgetReport",
    "PruneError",
    "PrunePlan",
    "PruneReport",
    "all_snapshots",
    "delete_snapshots",
    "forget",
    "plan_prune",
    "prune",
]

#: default grace period: longer than any backup run may take. A backup that
#: was already running when a prune marked packs must finish (write its
#: snapshot) within this time, or it may refer to deleted data.
DEFAULT_GRACE = dt.timedelta(days=2)
#: merge the index objects into one when there are more than this many
COMPACT_INDEX_OBJECTS = 16


@dataclass
class ForgetReport:
    keep: list[dict] = field(default_factory=list)
    forget: list[dict] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PruneReport:
    dry_run: bool = False
    snapshots: int = 0
    # sweep
    markers_swept: int = 0
    packs_deleted: int = 0
    bytes_deleted: int = 0
    packs_spared: int = 0  # condemned, but a snapshot written since refers to them
    index_objects_replaced: int = 0
    index_objects_written: int = 0
    # mark
    packs_marked: int = 0
    bytes_marked: int = 0
    marker: str = ""
    markers_pending: int = 0  # younger than the grace period, swept by a later run
    # what stays
    packs_kept: int = 0
    bytes_kept: int = 0
    waste_bytes: int = 0  # unreferenced blobs inside packs that are still used
    packs_to_repack: int = 0  # partly used packs above the repack threshold
    bytes_to_repack: int = 0  # their referenced bytes, copied into new packs
    packs_written: int = 0  # new packs the repack wrote
    objects_locked: int = 0  # under S3 Object Lock: left, swept by a later run
    repacked: bool = False
    deleted: list[str] = field(default_factory=list)  # object keys (deleted or to delete)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# --- forget -------------------------------------------------------------------------------
def forget(
    repo: Repository, policy: RetentionPolicy, *, dry_run: bool = False, **retention_options
) -> tuple[RetentionResult, ForgetReport]:
    """Delete the snapshots ``policy`` does not keep (snapshot objects only).
    ``retention_options`` go to :func:`apply_retention` (``group_by``)."""
    errors: list = []
    snaps = repo.snapshots(errors=errors)
    if errors:
        sid, message = errors[0]
        raise PruneError(f"snapshot {sid[:8]} cannot be read ({message}); nothing forgotten")
    result = apply_retention(snaps, policy, **retention_options)
    if not dry_run:
        delete_snapshots(repo, [s.id for s in result.forget], keep=[s.id for s in result.keep])
    report = ForgetReport(
        keep=[{**s.summary(), "reasons": result.reasons.get(s.id, [])} for s in result.keep],
        forget=[s.summary() for s in result.forget],
        dry_run=dry_run,
    )
    return result, report


def delete_snapshots(repo: Repository, ids: list[str], *, keep: list[str]) -> None:
    """Delete the snapshot objects ``ids`` (their data stays until a prune);
    ``keep``: the ids that remain (the local cache keeps only those). For
    callers that decide themselves what to forget (the console decides on the
    times it observed, console/storage/observed.py)."""
    for sid in ids:
        repo.store.delete(f"snapshots/{sid}")
    if repo.cache is not None:
        repo.cache.keep_only("snapshots", set(keep))


# --- prune: plan ---------------------------------------------------------------------------
@dataclass
class PrunePlan:
    """What a prune will do, decided from one reading of the repository.

    ``report`` holds the figures as planned (a dry run's answer); executing
    fills in what only doing tells (index objects and packs written, the
    marker, repacks that failed). Steps run in this order, each create-only
    or deleting only what a written object already supersedes."""

    repo: Repository
    report: PruneReport
    now: dt.datetime
    started: float  # time.monotonic() when planning began (the marker's time)
    # sweep
    compact: bool = False
    index_written: dict[str, list[BlobEntry]] = field(default_factory=dict)
    index_replaced: list[str] = field(default_factory=list)
    packs_deleted: list[str] = field(default_factory=list)
    markers_swept: list[str] = field(default_factory=list)
    # repack, then mark
    repack: list[str] = field(default_factory=list)
    mark: list[str] = field(default_factory=list)  # without the repacked ones
    # what repack needs to know (the state after the sweep)
    _loaded: Loaded | None = None
    _excluded: set[str] = field(default_factory=set)
    #: planned with assume_forgotten: snapshots that still exist were left out
    printing_only: bool = False
    executed: bool = False

    def describe(self) -> list[str]:
        """One line per step, for ``--dry-run`` and logs."""
        r = self.report
        lines = [f"{r.snapshots} snapshot(s) reference the data that stays"]
        if self.compact:
            lines.append(
                f"sweep {len(self.markers_swept)} marker(s): delete {len(self.packs_deleted)} "
                f"pack(s) ({r.bytes_deleted} bytes), spare {r.packs_spared}, "
                f"merge {len(self.index_replaced)} index object(s) into one"
            )
        if self.repack:
            lines.append(f"repack {len(self.repack)} pack(s): copy {r.bytes_to_repack} bytes")
        if self.mark or self.repack:
            lines.append(f"mark {r.packs_marked} pack(s) ({r.bytes_marked} bytes)")
        if r.markers_pending:
            lines.append(f"{r.markers_pending} marker(s) wait for the grace period")
        return lines

    def execute(self, log: Callable[[str], None] | None = None) -> PruneReport:
        """Do the plan; the report of what was done."""
        if self.printing_only:
            raise ValueError("a plan made with assume_forgotten is for dry runs only")
        if self.executed:  # its decisions are about a repository that has changed since
            raise ValueError("this prune plan was executed already; plan again")
        self.executed = True
        say = log or (lambda _m: None)
        report = self.report
        report.dry_run = False
        store = self.repo.store
        packs_locked: list[str] = []
        if self.compact:
            say(
                f"sweep: {len(self.markers_swept)} marker(s), delete {len(self.packs_deleted)} pack(s)"
            )
            # Object Lock: what is still retained is left and retried later
            # (packs marked again; a locked index object defers the sweep)
            packs_locked = self._honour_locks(report)
        mark = list(self.mark)
        if self.compact:
            # (a) the merged index first, (b) then the objects it supersedes,
            # (c) then the packs, (d) then the markers.
            if self.index_written:
                self.repo.save_index(self.index_written)
                report.index_objects_written = 1
            delete_all(store, self.index_replaced)
            delete_all(store, [pack_key(p) for p in self.packs_deleted])
            for key in self.markers_swept:
                store.delete(key)
            mark += packs_locked
        if self.repack:
            say(f"repack: {len(self.repack)} pack(s)")
            loaded = self._loaded
            done, report.packs_written = repack_packs(
                self.repo,
                self.repack,
                loaded.pack_entries,
                loaded.locations,
                loaded.referenced,
                self._excluded,
                report.warnings,
            )
            report.repacked = bool(done)
            if len(done) != len(self.repack):
                report.packs_marked = len(mark) + len(done)
                report.bytes_marked = sizes(self.repo, set(mark) | set(done))
            mark += done
        if mark:
            if packs_locked:
                report.packs_marked = len(mark)
                report.bytes_marked = sizes(self.repo, set(mark))
            say(f"mark: {len(mark)} pack(s), {report.bytes_marked} bytes")
            # stamped when written: a backup starting before this saw no marker
            when = self.now + dt.timedelta(seconds=time.monotonic() - self.started)
            when = when.astimezone(dt.UTC).isoformat(timespec="microseconds")
            doc = {"v": 1, "time": when.replace("+00:00", "Z"), "packs": mark}
            plain = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
            report.marker = "prune/" + self.repo.put_sealed("prune", plain, PRUNE_AAD)
        return report

    def _honour_locks(self, report: PruneReport) -> list[str]:
        """Take what S3 Object Lock still retains out of the sweep, judged on
        the wall clock (the storage's retention, not the plan's ``now``). A
        locked index object defers the whole sweep (its entries must not
        outlive their packs); locked packs are left and marked again, so a
        prune after their retention deletes them. The packs marked again."""
        store = self.repo.store
        now = dt.datetime.now(dt.UTC)
        index_locked = _locked(store, self.index_replaced, now)
        if index_locked:
            first = min(index_locked.values()).isoformat(timespec="seconds")
            report.warnings.append(
                f"{len(index_locked)} index object(s) under Object Lock (first until {first}): "
                "sweep deferred to a later prune"
            )
            report.objects_locked = len(index_locked)
            report.packs_deleted = report.bytes_deleted = report.markers_swept = 0
            report.index_objects_replaced = 0
            report.deleted = []
            self.compact = False
            self.index_written = {}
            self.repack = []  # planned on the repository as swept
            return []
        locked = _locked(store, [pack_key(p) for p in self.packs_deleted], now)
        if not locked:
            return []
        packs = [p for p in self.packs_deleted if pack_key(p) in locked]
        first = min(locked.values()).isoformat(timespec="seconds")
        report.warnings.append(
            f"{len(packs)} pack(s) under Object Lock (first until {first}): left and marked again"
        )
        report.objects_locked = len(packs)
        self.packs_deleted = [p for p in self.packs_deleted if pack_key(p) not in locked]
        report.packs_deleted = len(self.packs_deleted)
        report.bytes_deleted = sizes(self.repo, set(self.packs_deleted))
        report.deleted = [k for k in report.deleted if k not in locked]
        return packs


def _locked(store, keys: list[str], now: dt.datetime) -> dict[str, dt.datetime]:
    """The keys whose Object Lock retention runs past ``now``."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        untils = list(pool.map(store.locked_until, keys))
    return {k: u for k, u in zip(keys, untils, strict=True) if u is not None and u > now}


def plan_prune(
    repo: Repository,
    *,
    grace: dt.timedelta = DEFAULT_GRACE,
    now: dt.datetime | None = None,
    running_since: dt.datetime | None = None,
    assume_forgotten: frozenset[str] | set[str] = frozenset(),
    repack_above: float | None = None,
) -> PrunePlan:
    """Decide what a prune does now; reads the repository, writes nothing.

    Sweep markers older than ``grace``, then mark what is unreferenced.
    ``running_since``: the start of the oldest backup known to be running
    (the console knows from the agents' reports); markers written after it
    are not swept yet, however old, since that backup may use their packs.
    ``repack_above``: also repack packs whose unreferenced share of bytes
    is above this fraction (0.0–1.0; None: never): their referenced blobs
    are copied (verified) into new packs, and the old packs are marked like
    unreferenced ones. ``assume_forgotten``: snapshot ids to treat as
    deleted (what a ``forget --dry-run`` would forget; such a plan is for
    printing only). ``now`` is for tests. Raises PruneError (nothing
    deleted) when a snapshot or a tree cannot be read."""
    plan = PrunePlan(
        repo, PruneReport(dry_run=True), now or dt.datetime.now(dt.UTC), time.monotonic()
    )
    loaded = load(repo, plan.report.warnings, assume_forgotten)
    plan.report.snapshots = len(loaded.snaps)
    plan._loaded = loaded
    plan.printing_only = bool(assume_forgotten)
    due, pending = _due_markers(loaded.markers, plan.now, grace, running_since, plan.report)
    plan.report.markers_pending = len(pending)
    _plan_sweep(plan, loaded, due)
    _plan_mark(plan, loaded, pending, repack_above)
    return plan


def prune(
    repo: Repository,
    *,
    dry_run: bool = False,
    log: Callable[[str], None] | None = None,
    assume_forgotten: frozenset[str] | set[str] = frozenset(),
    **options,
) -> PruneReport:
    """:func:`plan_prune` (``options`` are its keywords), then execute the
    plan unless ``dry_run``."""
    if assume_forgotten and not dry_run:
        raise ValueError("assume_forgotten is for dry runs only")
    plan = plan_prune(repo, assume_forgotten=assume_forgotten, **options)
    say = log or (lambda _m: None)
    say(f"{plan.report.snapshots} snapshot(s) reference {len(plan._loaded.referenced)} blob(s)")
    if dry_run:
        for line in plan.describe():
            say(line)
        return plan.report
    return plan.execute(log)


def _due_markers(markers, now, grace, running_since, report):
    """(markers old enough to sweep, markers that wait), as (key, doc)."""
    due, pending = [], []
    for key, doc in markers:
        try:
            marked_at = parse_time(doc["time"])
        except (KeyError, ValueError, TypeError):
            report.warnings.append(f"{key}: no valid time (ignored)")
            continue
        held = running_since is not None and marked_at >= running_since
        (due if now - marked_at >= grace and not held else pending).append((key, doc))
    return due, pending


def _plan_sweep(plan: PrunePlan, loaded: Loaded, due) -> None:
    """Which condemned packs go, which index objects merge; then the state
    as it will be after the sweep (``loaded`` updated), for the mark."""
    report = plan.report
    condemned = {p for _k, doc in due for p in doc.get("packs", ())}
    delete = {p for p in condemned if p in loaded.stored_packs}
    recovered = _spare(plan.repo, loaded, delete, report)
    compact = bool(due) or len(loaded.index_keys) - len(loaded.damaged) > COMPACT_INDEX_OBJECTS
    if compact:
        plan.compact = True
        plan.packs_deleted = sorted(delete)
        plan.markers_swept = [k for k, _ in due]
        report.packs_deleted = len(delete)
        report.bytes_deleted = sizes(plan.repo, delete)
        report.markers_swept = len(due)
        report.deleted += [pack_key(p) for p in plan.packs_deleted] + plan.markers_swept
        damaged = dict(loaded.damaged)
        plan.index_replaced = [k for k in loaded.index_keys if k not in damaged]
        report.index_objects_replaced = len(plan.index_replaced)
        merged: dict[str, list[BlobEntry]] = {}
        for key in plan.index_replaced:
            for pid, entries in loaded.by_object[key].items():
                if pid not in delete and pid not in merged:
                    merged[pid] = entries
        merged.update(recovered)
        plan.index_written = merged
        for pid in delete:
            for e in loaded.pack_entries.pop(pid, None) or ():
                loaded.locations[e.id].discard(pid)
        loaded.stored_packs -= delete
        # re-indexed by the sweep: judged by the mark like any indexed pack
        for pid, entries in recovered.items():
            loaded.pack_entries[pid] = entries
            for e in entries:
                loaded.locations.setdefault(e.id, set()).add(pid)


def _spare(repo, loaded: Loaded, delete: set[str], report: PruneReport):
    """Take out of ``delete`` the condemned packs that hold the only copy of
    a referenced blob (a backup running at mark time may have used them), or
    that cannot be read; the unindexed ones among them, to index again."""
    recovered: dict[str, list[BlobEntry]] = {}
    for pid in sorted(delete):
        entries = loaded.pack_entries.get(pid)
        if entries is None:  # not indexed: its header says what it holds
            entries = header_entries(repo, pid, report.warnings)
            if entries is None:  # unreadable: keep it, never guess
                delete.discard(pid)
                report.packs_spared += 1
                continue
        needed = [
            e
            for e in entries
            if e.id in loaded.referenced and not (loaded.locations.get(e.id, set()) - delete)
        ]
        if needed:
            delete.discard(pid)
            report.packs_spared += 1
            if pid not in loaded.pack_entries:  # referenced but unindexed: index it
                recovered[pid] = entries
    # Spared packs may in turn be the other copy for blobs of packs still in
    # ``delete``; the rule above only removes from ``delete``, so one pass is
    # conservative (it may spare more than needed, never less).
    return recovered


def _plan_mark(plan: PrunePlan, loaded: Loaded, pending, repack_above) -> None:
    """Unreferenced packs not already condemned by a pending marker; partly
    used ones above ``repack_above`` to repack first.

    A blob is used by location, not by id: stored in several packs (two
    backups of the same data that ran at the same time), it is used only in
    the pack the index resolves it to, as an agent's index does (a copy
    outside condemned packs first, then the first index object's). The other
    copies are waste; a pack holding only such copies is marked like an
    unreferenced one, and the sweep deletes it only while another copy of
    each referenced blob survives (the spare rule above)."""
    report = plan.report
    already = {p for _k, doc in pending for p in doc.get("packs", ())}
    home = home_packs(loaded.by_object, loaded.pack_entries, already)
    to_mark = []
    sparse: list[tuple[str, int, int]] = []  # (pack, total, used) of partly used packs
    for pid in sorted(loaded.stored_packs):
        if pid in already:
            continue
        entries = loaded.pack_entries.get(pid)
        if entries is None:
            to_mark.append(pid)  # no index object names it (crash, or a running backup)
            continue
        used = sum(e.length for e in entries if e.id in loaded.referenced and home.get(e.id) == pid)
        if not used:
            to_mark.append(pid)
        else:
            sparse.append((pid, sum(e.length for e in entries), used))
    repack = []
    if repack_above is not None:
        repack = [pid for pid, total, used in sparse if (total - used) > repack_above * total]
    if repack:
        report.packs_to_repack = len(repack)
        report.bytes_to_repack = sum(used for pid, _t, used in sparse if pid in set(repack))
    for pid, total, used in sparse:
        if pid not in repack:
            report.packs_kept += 1
            report.bytes_kept += total
            report.waste_bytes += total - used
    plan.repack, plan.mark = repack, to_mark
    plan._excluded = already | set(to_mark)  # a copy in a pack about to be marked does not count
    if to_mark or repack:
        report.packs_marked = len(to_mark) + len(repack)
        report.bytes_marked = sizes(plan.repo, set(to_mark) | set(repack))
