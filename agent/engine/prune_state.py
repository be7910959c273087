"""Prune's reading of a repository: snapshots, markers, index objects and
packs as they are, and what the snapshots reference (agent/engine/prune.py
decides from it). Reading only: nothing here writes or deletes, except the
parallel delete helper the plan's execution uses."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from agent.engine.errors import CorruptObject, PruneError, UnsupportedVersion
from agent.engine.index import INDEX_AAD, MasterIndex, decode_index
from agent.engine.pack import BlobEntry, pack_key
from agent.engine.repair import read_header_of
from agent.engine.repository import Repository
from agent.engine.snapshot import Snapshot
from agent.engine.store import ObjectNotFound, StoreError
from agent.engine.tree import DIR, FILE


@dataclass
class Loaded:
    """What the repository holds, read once by plan_prune."""

    snaps: list[Snapshot]
    markers: list[tuple[str, dict]]
    index_keys: list[str]
    by_object: dict[str, dict[str, list[BlobEntry]]]  # index object -> its packs
    damaged: list[tuple[str, str]]  # index objects that cannot be read (kept)
    stored_packs: set[str]
    pack_entries: dict[str, list[BlobEntry]]  # pack -> blobs (first index object naming it)
    locations: dict[bytes, set[str]]  # blob -> every pack holding a copy
    referenced: set[bytes]


def load(repo: Repository, warnings: list[str], assume_forgotten) -> Loaded:
    """What exists, in this order: snapshots first (every index object a
    snapshot needs was stored before it, so the index listed next covers
    them), then markers, index objects (each, for the rewrite), packs; then
    what those snapshots reference (all or nothing)."""
    store = repo.store
    snaps = [s for s in all_snapshots(repo) if s.id not in assume_forgotten]
    marker_errors: list = []
    markers = repo.prune_markers(errors=marker_errors)
    for key, message in marker_errors:
        warnings.append(f"{key}: {message} (ignored: nothing it names is deleted)")
    index_keys = sorted(store.list("index/"))
    by_object, damaged = load_index_objects(repo, index_keys)
    for key, message in damaged:
        warnings.append(f"{key}: {message} (kept)")
    stored_packs = {k.rsplit("/", 1)[-1] for k in store.list("data/")}
    fresh = MasterIndex()
    for packs in by_object.values():
        fresh.merge(packs)
    repo.index = fresh
    pack_entries: dict[str, list[BlobEntry]] = {}
    for packs in by_object.values():
        for pid, entries in packs.items():
            pack_entries.setdefault(pid, entries)
    locations: dict[bytes, set[str]] = {}
    for pid, entries in pack_entries.items():
        for e in entries:
            locations.setdefault(e.id, set()).add(pid)
    referenced = referenced_blobs(repo, snaps)
    return Loaded(
        snaps,
        markers,
        index_keys,
        by_object,
        damaged,
        stored_packs,
        pack_entries,
        locations,
        referenced,
    )


def home_packs(by_object, pack_entries, condemned) -> dict[bytes, str]:
    """blob id -> the pack the index resolves it to (MasterIndex's rule over
    the index objects in key order), among the packs still indexed."""
    index = MasterIndex()
    index.condemn(condemned)
    for key in sorted(by_object):
        index.merge({p: e for p, e in by_object[key].items() if p in pack_entries})
    known = {p for packs in by_object.values() for p in packs}
    index.merge({p: e for p, e in pack_entries.items() if p not in known})  # recovered
    return {blob_id: e.pack_id for blob_id, e in index.items()}


def load_index_objects(repo: Repository, keys: list[str]):
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


def referenced_blobs(repo: Repository, snaps: list[Snapshot]) -> set[bytes]:
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


def header_entries(repo: Repository, pid: str, warnings: list[str]) -> list[BlobEntry] | None:
    """The blobs a pack's own header lists; None (a warning) when unreadable."""
    try:
        return read_header_of(repo, pack_key(pid))
    except ObjectNotFound:
        return []
    except (CorruptObject, UnsupportedVersion, StoreError) as exc:
        warnings.append(f"{pack_key(pid)}: {exc} (kept)")
        return None


def sizes(repo: Repository, packs: set[str]) -> int:
    def size(pid):
        try:
            return repo.store.size(pack_key(pid))
        except ObjectNotFound:
            return 0

    with ThreadPoolExecutor(max_workers=8) as pool:
        return sum(pool.map(size, sorted(packs)))


def delete_all(store, keys: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(store.delete, keys))
