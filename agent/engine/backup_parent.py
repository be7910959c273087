"""The backup's parent snapshot: which one, its trees as typed nodes, and
whether a file is unchanged since (so its content is not read again)."""

from __future__ import annotations

import os

from agent.engine import paths as pathmap
from agent.engine.errors import EngineError
from agent.engine.repository import Repository
from agent.engine.snapshot import Snapshot
from agent.engine.store import StoreError
from agent.engine.tree import FILE, Node

#: a file modified this close to (or after) the parent's start may have been
#: read mid-write by the parent with unchanged timestamps on a coarse-clock
#: filesystem: read it again rather than trust the parent's copy
RACY_MARGIN_NS = 2_000_000_000


def find_parent(
    repo: Repository,
    ref: str | None,
    hostname: str,
    native_sources: list[str],
    flavour: pathmap.Flavour,
) -> Snapshot | None:
    """``ref``: "auto" (latest snapshot of this host, preferring the same
    paths), a snapshot id/prefix (SnapshotNotFound if none), or None."""
    if ref is None:
        return None
    if ref != "auto":
        return repo.find_snapshot(ref)
    snaps = [s for s in repo.snapshots() if s.hostname == hostname]
    key = str.casefold if flavour.case_insensitive else str
    wanted = sorted(map(key, native_sources))
    same = [s for s in snaps if sorted(map(key, s.paths)) == wanted]
    return (same or snaps or [None])[-1]


class ParentTrees:
    """The parent snapshot's directories, read as the walk reaches them."""

    def __init__(self, repo: Repository, parent: Snapshot | None):
        self.repo = repo
        self.parent = parent
        self.start_ns = int(parent.start.timestamp() * 1e9) if parent is not None else 0
        self.root_id = bytes.fromhex(parent.tree) if parent is not None else None

    def root(self) -> dict[bytes, Node] | None:
        return self.by_name(self.root_id)

    def by_name(self, tree_id: bytes | None) -> dict[bytes, Node] | None:
        """A parent directory's nodes by name; None without one."""
        if not tree_id:
            return None
        try:
            return {n.name: n for n in self.repo.load_nodes(tree_id)}
        except (EngineError, StoreError):
            # A parent tree that is damaged or cannot be fetched (an offline
            # agent whose cache lacks it) only costs reading that directory's
            # files again: deduplication still works through the index.
            return None

    def unchanged(self, prev: Node | None, st: os.stat_result) -> bool:
        """Whether the parent's copy of a file is still its content: same
        size, mtime, ctime and inode, not changed around the parent's start,
        not flagged, and every chunk still in the repository."""
        if prev is None or prev.type != FILE or prev.flags:
            return False
        if (
            prev.size != st.st_size
            or prev.mtime_ns != st.st_mtime_ns
            or prev.ctime_ns != st.st_ctime_ns
            or prev.ino != st.st_ino
        ):
            return False
        if st.st_mtime_ns >= self.start_ns - RACY_MARGIN_NS:
            return False
        reusable = self.repo.index.reusable
        return all(reusable(c) for c in prev.chunk_ids)
