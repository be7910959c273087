"""Searching file names across devices' snapshots, bounded in results and
time."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.engine.errors import CorruptObject, EngineError, UnsafeName
from agent.engine.snapshot import Snapshot
from agent.engine.store import StoreError
from agent.engine.tree import DIR, FILE, Node
from console.fleet.models import Device
from console.restore.errors import RestoreError
from console.restore.repositories import open_repository
from console.restore.snapshots import checked_name, mtime_iso

#: one file name or glob, not blank
PATTERN_PATTERN = r"^[^/\x00]*[^/\x00\s][^/\x00]*$"

#: search bounds
SEARCH_LIMIT = 200
MAX_SEARCH_LIMIT = 1000
SEARCH_SECONDS = 10.0
SEARCH_SNAPSHOTS = 30  # newest snapshots searched per device
SEARCH_DEVICES = 500  # devices searched by a fleet-wide search
MAX_PATTERN = 200


@dataclass
class SearchResult:
    versions: list[dict]
    truncated: bool
    devices_searched: int
    snapshots_searched: int
    seconds: float


def matcher(pattern: str):
    """Glob (``*``, ``?``, ``[...]``) when the pattern has one, else a
    case-insensitive substring; both on the file name."""
    pattern = (pattern or "").strip()
    if not pattern:
        raise RestoreError("Give a name or a pattern to search for.")
    if len(pattern) > MAX_PATTERN or "/" in pattern or "\0" in pattern:
        raise RestoreError(f"A pattern is one name (no /), at most {MAX_PATTERN} characters.")
    if any(c in pattern for c in "*?["):
        folded = pattern.casefold()
        return lambda name: fnmatch.fnmatchcase(name.casefold(), folded)
    needle = pattern.casefold()
    return lambda name: needle in name.casefold()


@dataclass
class _Walk:
    """One search's pattern, bounds and findings, shared by its snapshot walks."""

    match: Callable[[str], bool]
    limit: int
    seconds: float
    started: float = field(default_factory=time.monotonic)
    versions: list[dict] = field(default_factory=list)

    def out_of_time(self) -> bool:
        return time.monotonic() - self.started > self.seconds


def search(
    pattern: str,
    devices: list[Device],
    *,
    limit: int = SEARCH_LIMIT,
    seconds: float = SEARCH_SECONDS,
) -> SearchResult:
    """Files whose name matches, as versions (device, snapshot, path, size,
    mtime), newest snapshot first; a version (same path, size and time) seen
    in several snapshots is given once, with the newest snapshot holding it.
    Unchanged subtrees are walked once per path. Bounded by ``limit`` results
    and ``seconds``; ``truncated`` says a bound was hit."""
    if not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise RestoreError(f"A search returns 1 to {MAX_SEARCH_LIMIT} results.")
    walk = _Walk(matcher(pattern), limit, seconds)
    truncated = False
    n_dev = n_snap = 0
    for device in devices[:SEARCH_DEVICES]:
        try:
            repo = open_repository(device)
            snaps = repo.snapshots()
        except (RestoreError, EngineError, StoreError):  # no backups yet, unreadable
            continue
        n_dev += 1
        # per device: a subtree unchanged since a newer snapshot is walked once,
        # and a version already found in a newer snapshot is not given again
        seen_trees: set[tuple[str, bytes]] = set()
        seen_versions: set[tuple[str, int, int | None]] = set()
        for snap in reversed(snaps[-SEARCH_SNAPSHOTS:]):
            n_snap += 1
            if _walk_snapshot(walk, repo, device, snap, seen_trees, seen_versions):
                truncated = True
                break
        if truncated:
            break
    elapsed = round(time.monotonic() - walk.started, 3)
    return SearchResult(walk.versions, truncated, n_dev, n_snap, elapsed)


def _walk_snapshot(walk: _Walk, repo, device, snap, seen_trees, seen_versions) -> bool:
    """Add the snapshot's matching versions to ``walk``; True when a bound
    (time or results) was hit."""
    stack = [("", bytes.fromhex(snap.tree))]
    while stack:
        if walk.out_of_time():
            return True
        prefix, tree = stack.pop()
        if (prefix, tree) in seen_trees:
            continue
        seen_trees.add((prefix, tree))
        try:
            nodes = repo.load_nodes(tree)
        except (CorruptObject, StoreError):
            continue
        for node in nodes:
            try:
                name = checked_name(node, snap)
            except UnsafeName:
                continue
            path = f"{prefix}/{name}"
            if node.type == DIR and node.subtree:
                stack.append((path, node.subtree))
            elif node.type == FILE and walk.match(name):
                key = (path, node.file_size, node.mtime_ns)
                if key in seen_versions:
                    continue
                seen_versions.add(key)
                walk.versions.append(_version(device, snap, path, node))
                if len(walk.versions) >= walk.limit:
                    return True
    return False


def _version(device: Device, snap: Snapshot, path: str, node: Node) -> dict:
    return {
        "device": str(device.pk),
        "hostname": device.hostname,
        "snapshot": snap.id,
        "snapshot_time": snap.time,
        "path": path,
        "size": node.file_size,
        "mtime": mtime_iso(node),
    }
