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
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from agent.engine import compress
from agent.engine.errors import CorruptObject, EngineError, UnsupportedVersion
from agent.engine.index import INDEX_AAD, MasterIndex, decode_index
from agent.engine.pack import (
    DATA,
    TREE,
    TREE_PACK_SIZE,
    BlobEntry,
    FinishedPack,
    PackWriter,
    blob_aad,
    pack_key,
)
from agent.engine.repository import PRUNE_AAD, Repository
from agent.engine.retention import RetentionPolicy, RetentionResult, apply_retention
from agent.engine.snapshot import Snapshot, parse_time
from agent.engine.store import ObjectExists, ObjectNotFound, StoreError
from agent.engine.tree import DIR, FILE

#: default grace period: longer than any backup run may take. A backup that
#: was already running when a prune marked packs must finish (write its
#: snapshot) within this time, or it may refer to deleted data.
DEFAULT_GRACE = dt.timedelta(days=2)
#: merge the index objects into one when there are more than this many
COMPACT_INDEX_OBJECTS = 16


class PruneError(EngineError):
    """Prune refused to run (it never deletes on incomplete information)."""


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


# --- prune --------------------------------------------------------------------------------
def prune(
    repo: Repository,
    *,
    grace: dt.timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    running_since: dt.datetime | None = None,
    assume_forgotten: frozenset[str] | set[str] = frozenset(),
    repack_above: float | None = None,
    log: Callable[[str], None] | None = None,
) -> PruneReport:
    """Sweep markers older than ``grace``, then mark what is unreferenced now.

    ``running_since``: the start of the oldest backup known to be running
    (the console knows from the agents' reports); markers written after it
    are not swept yet, however old, since that backup may use their packs.
    ``repack_above``: also repack packs whose unreferenced share of bytes
    is above this fraction (0.0–1.0; None: never): their referenced blobs
    are copied (verified) into new packs, and the old packs are marked like
    unreferenced ones.
    ``assume_forgotten``: snapshot ids to treat as deleted (only with
    ``dry_run``: what a ``forget --dry-run`` would forget).
    ``now`` is for tests. Raises PruneError (nothing deleted) when a snapshot
    or a tree cannot be read."""
    clock = time.monotonic()
    now = now or dt.datetime.now(dt.UTC)
    say = log or (lambda _m: None)
    report = PruneReport(dry_run=dry_run)
    store = repo.store

    # 1. What exists, in this order: snapshots first (every index object a
    # snapshot needs was stored before it, so the index listed next covers
    # them), then markers, index objects (each, for the rewrite), packs.
    if assume_forgotten and not dry_run:
        raise ValueError("assume_forgotten is for dry runs only")
    snaps = [s for s in all_snapshots(repo) if s.id not in assume_forgotten]
    report.snapshots = len(snaps)
    marker_errors: list = []
    markers = repo.prune_markers(errors=marker_errors)
    for key, message in marker_errors:
        report.warnings.append(f"{key}: {message} (ignored: nothing it names is deleted)")
    index_keys = sorted(store.list("index/"))
    by_object, damaged = _load_index_objects(repo, index_keys)
    for key, message in damaged:
        report.warnings.append(f"{key}: {message} (kept)")
    stored_packs = {k.rsplit("/", 1)[-1] for k in store.list("data/")}
    fresh = MasterIndex()
    for packs in by_object.values():
        fresh.merge(packs)
    repo.index = fresh

    # locations: blob id -> packs holding it (every copy, not only the first)
    pack_entries: dict[str, list[BlobEntry]] = {}
    for packs in by_object.values():
        for pid, entries in packs.items():
            pack_entries.setdefault(pid, entries)
    locations: dict[bytes, set[str]] = {}
    for pid, entries in pack_entries.items():
        for e in entries:
            locations.setdefault(e.id, set()).add(pid)

    # 2. What those snapshots reference (all or nothing).
    referenced = _referenced_blobs(repo, snaps)
    say(f"{report.snapshots} snapshot(s) reference {len(referenced)} blob(s)")

    # 3. Sweep markers older than the grace period.
    due, pending = [], []
    for key, doc in markers:
        try:
            marked_at = parse_time(doc["time"])
        except (KeyError, ValueError, TypeError):
            report.warnings.append(f"{key}: no valid time (ignored)")
            continue
        held = running_since is not None and marked_at >= running_since
        (due if now - marked_at >= grace and not held else pending).append((key, doc))
    condemned = {p for _k, doc in due for p in doc.get("packs", ())}
    delete = {p for p in condemned if p in stored_packs}
    recovered: dict[str, list[BlobEntry]] = {}
    # Spare condemned packs that hold the only copy of a referenced blob.
    for pid in sorted(delete):
        entries = pack_entries.get(pid)
        if entries is None:  # not indexed: its header says what it holds
            entries = _header(repo, pid, report)
            if entries is None:  # unreadable: keep it, never guess
                delete.discard(pid)
                report.packs_spared += 1
                continue
        if any(e.id in referenced for e in entries):
            needed = [
                e
                for e in entries
                if e.id in referenced and not (locations.get(e.id, set()) - delete)
            ]
            if needed:
                delete.discard(pid)
                report.packs_spared += 1
                if pid not in pack_entries:  # referenced but unindexed: index it
                    recovered[pid] = entries
    # Spared packs may in turn be the other copy for blobs of packs still in
    # ``delete``; the rule above only removes from ``delete``, so one pass is
    # conservative (it may spare more than needed, never less).
    compact = bool(due) or len(index_keys) - len(damaged) > COMPACT_INDEX_OBJECTS
    if compact:
        bytes_deleted = _sizes(repo, delete)
        report.packs_deleted = len(delete)
        report.bytes_deleted = bytes_deleted
        report.markers_swept = len(due)
        report.deleted += [pack_key(p) for p in sorted(delete)]
        say(f"sweep: {len(due)} marker(s), delete {len(delete)} pack(s)")
        report.deleted += [k for k, _ in due]
        rewrite = [k for k in index_keys if k not in dict(damaged)]
        report.index_objects_replaced = len(rewrite)
        if not dry_run:
            # (a) the merged index first, (b) then the objects it supersedes,
            # (c) then the packs, (d) then the markers.
            merged: dict[str, list[BlobEntry]] = {}
            for key in rewrite:
                for pid, entries in by_object[key].items():
                    if pid not in delete and pid not in merged:
                        merged[pid] = entries
            merged.update(recovered)
            if merged:
                repo.save_index(merged)
                report.index_objects_written = 1
            _delete_all(store, rewrite)
            _delete_all(store, [pack_key(p) for p in sorted(delete)])
            for key, _doc in due:
                store.delete(key)
        for pid in delete:
            for e in pack_entries.pop(pid, None) or ():
                locations[e.id].discard(pid)
        stored_packs -= delete
        if not dry_run:  # now indexed: judged below like any indexed pack
            for pid, entries in recovered.items():
                pack_entries[pid] = entries
                for e in entries:
                    locations.setdefault(e.id, set()).add(pid)
    report.markers_pending = len(pending)

    # 4. Mark: unreferenced packs not already condemned by a pending marker.
    already = {p for _k, doc in pending for p in doc.get("packs", ())}
    if dry_run:
        already |= condemned - delete  # spared ones are not marked again either
    # A blob is used by location, not by id: stored in several packs (two
    # backups of the same data that ran at the same time), it is used only in
    # the pack the index resolves it to, as an agent's index does (a copy
    # outside condemned packs first, then the first index object's). The other
    # copies are waste; a pack holding only such copies is marked like an
    # unreferenced one, and the sweep deletes it only while another copy of
    # each referenced blob survives (the spare rule above).
    home = _home_packs(by_object, pack_entries, already)
    to_mark = []
    sparse: list[tuple[str, int, int]] = []  # (pack, total, used) of partly used packs
    for pid in sorted(stored_packs):
        if pid in already:
            continue
        entries = pack_entries.get(pid)
        if entries is None:
            to_mark.append(pid)  # no index object names it (crash, or a running backup)
            continue
        used = sum(e.length for e in entries if e.id in referenced and home.get(e.id) == pid)
        if not used:
            to_mark.append(pid)
        else:
            total = sum(e.length for e in entries)
            sparse.append((pid, total, used))
    repack = []
    if repack_above is not None:
        repack = [pid for pid, total, used in sparse if (total - used) > repack_above * total]
    if repack:
        report.packs_to_repack = len(repack)
        report.bytes_to_repack = sum(used for pid, _t, used in sparse if pid in set(repack))
        say(f"repack: {len(repack)} pack(s)")
        if not dry_run:
            # a copy in a pack about to be marked does not count either
            out = already | set(to_mark)
            repack = _repack(repo, repack, pack_entries, locations, referenced, out, report)
            report.repacked = bool(repack)
        to_mark += repack
    for pid, total, used in sparse:
        if pid not in repack:
            report.packs_kept += 1
            report.bytes_kept += total
            report.waste_bytes += total - used
    if to_mark:
        report.packs_marked = len(to_mark)
        report.bytes_marked = _sizes(repo, set(to_mark))
        say(f"mark: {len(to_mark)} pack(s), {report.bytes_marked} bytes")
        if not dry_run:
            # stamped when written: a backup starting before this saw no marker
            when = now + dt.timedelta(seconds=time.monotonic() - clock)
            when = when.astimezone(dt.UTC).isoformat(timespec="microseconds")
            doc = {"v": 1, "time": when.replace("+00:00", "Z"), "packs": to_mark}
            plain = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
            report.marker = "prune/" + repo.put_sealed("prune", plain, PRUNE_AAD)
    return report


def _repack(repo, packs, pack_entries, locations, referenced, condemned, report) -> list[str]:
    """Copy the referenced blobs of ``packs`` into new packs (each blob
    decrypted and verified on the way), store them and their index object;
    the packs whose blobs are now all elsewhere (to be marked)."""
    written: dict[str, list[BlobEntry]] = {}

    def upload(fp: FinishedPack) -> None:
        try:
            repo.store.put(pack_key(fp.id), bytes(fp.data))
        except ObjectExists:
            pass
        finally:
            fp.release()
        written[fp.id] = fp.entries

    max_blob = repo.chunker_params.max_size
    writers = {
        DATA: PackWriter(repo.cipher, repo.pack_size, max_blob, upload, buffers=1),
        TREE: PackWriter(repo.cipher, TREE_PACK_SIZE, max_blob, upload, buffers=1),
    }
    chosen = set(packs) | condemned  # a copy in these does not count
    copied: set[bytes] = set()
    done = []
    for pid in packs:
        try:
            data = repo.store.get(pack_key(pid))
            payloads = []
            for e in pack_entries[pid]:
                if e.id not in referenced or e.id in copied or locations[e.id] - chosen:
                    continue  # unreferenced, already copied, or a copy exists elsewhere
                sealed = data[e.offset : e.offset + e.length]
                what = f"blob {e.id.hex()[:16]} in pack {pid[:16]}"
                if len(sealed) != e.length:
                    raise CorruptObject(f"{what} is truncated")
                payload = repo.cipher.open(sealed, blob_aad(e.type, e.compression, e.id), what=what)
                plain = compress.decompress(e.compression, payload, e.raw_length)
                if repo.blob_id(plain) != e.id:
                    raise CorruptObject(f"{what} does not match its id")
                payloads.append((e, payload))
        except (CorruptObject, UnsupportedVersion, StoreError) as exc:
            report.warnings.append(f"{pack_key(pid)}: {exc} (not repacked)")
            continue
        for e, payload in payloads:
            writers[e.type].add(e.id, e.type, e.compression, e.raw_length, payload)
            copied.add(e.id)
        done.append(pid)
    for writer in writers.values():
        writer.flush()
    if written:
        # the copies are indexed before the old packs are marked
        repo.save_index(written)
    report.packs_written = len(written)
    return done


def _home_packs(by_object, pack_entries, condemned) -> dict[bytes, str]:
    """blob id -> the pack the index resolves it to (MasterIndex's rule over
    the index objects in key order), among the packs still indexed."""
    index = MasterIndex()
    index.condemn(condemned)
    for key in sorted(by_object):
        index.merge({p: e for p, e in by_object[key].items() if p in pack_entries})
    known = {p for packs in by_object.values() for p in packs}
    index.merge({p: e for p, e in pack_entries.items() if p not in known})  # recovered
    return {blob_id: e.pack_id for blob_id, e in index.items()}


def _load_index_objects(repo: Repository, keys: list[str]):
    def load(key):
        try:
            plain = repo.get_sealed(key, INDEX_AAD, what=f"index object {key}", cache="index")
            return key, decode_index(plain, what=f"index object {key}"), None
        except (CorruptObject, UnsupportedVersion) as exc:
            return key, None, str(exc)
        except ObjectNotFound:
            return key, {}, None  # deleted meanwhile (another prune): nothing to keep

    by_object: dict[str, dict[str, list[BlobEntry]]] = {}
    damaged: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for key, packs, error in pool.map(load, keys):
            if error:
                damaged.append((key, error))
            else:
                by_object[key] = packs
    return by_object, damaged


def all_snapshots(repo: Repository) -> list[Snapshot]:
    errors: list = []
    snaps = repo.snapshots(errors=errors)
    if errors:
        sid, message = errors[0]
        raise PruneError(
            f"snapshot {sid[:8]} cannot be read ({message}): prune needs every snapshot; "
            "nothing was deleted"
        )
    return snaps


def _referenced_blobs(repo: Repository, snaps: list[Snapshot]) -> set[bytes]:
    referenced: set[bytes] = set()
    seen_trees: set[bytes] = set()
    for snap in snaps:
        stack = [bytes.fromhex(snap.tree)]
        while stack:
            tid = stack.pop()
            if tid in seen_trees:
                continue
            seen_trees.add(tid)
            referenced.add(tid)
            try:
                nodes = repo.load_nodes(tid)
            except (CorruptObject, UnsupportedVersion, StoreError) as exc:
                raise PruneError(
                    f"snapshot {snap.short_id}: tree {tid.hex()[:16]} cannot be read ({exc}); "
                    "run check (and check --rebuild-index); nothing was deleted"
                ) from None
            for node in nodes:
                if node.type == FILE:
                    referenced.update(node.chunk_ids)
                elif node.type == DIR and node.subtree:
                    stack.append(node.subtree)
    return referenced


def _header(repo: Repository, pid: str, report: PruneReport) -> list[BlobEntry] | None:
    from agent.engine.repair import read_header_of

    try:
        return read_header_of(repo, pack_key(pid))
    except ObjectNotFound:
        return []
    except (CorruptObject, UnsupportedVersion, StoreError) as exc:
        report.warnings.append(f"{pack_key(pid)}: {exc} (kept)")
        return None


def _sizes(repo: Repository, packs: set[str]) -> int:
    def size(pid):
        try:
            return repo.store.size(pack_key(pid))
        except ObjectNotFound:
            return 0

    with ThreadPoolExecutor(max_workers=8) as pool:
        return sum(pool.map(size, sorted(packs)))


def _delete_all(store, keys: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(store.delete, keys))
