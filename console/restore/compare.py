"""What changed in a folder between two snapshots of a device."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.engine.errors import UnsafeName
from agent.engine.paths import printable_name
from agent.engine.snapshot import Snapshot
from agent.engine.tree import DIR, FILE, Node
from console.fleet.models import Device
from console.restore.errors import NotFound
from console.restore.repositories import open_repository
from console.restore.snapshots import (
    checked_name,
    find_snapshot,
    locate,
    mtime_iso,
    parse_path,
    read_dir,
)

#: differences returned by a compare (more: truncated)
MAX_DIFFS = 5000


@dataclass
class Comparison:
    base: Snapshot
    other: Snapshot
    path: str
    added: list[dict] = field(default_factory=list)
    changed: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    truncated: bool = False


def _summary(path: str, node: Node) -> dict:
    return {
        "path": path,
        "type": str(node.type),
        "size": node.file_size if node.type == FILE else None,
        "mtime": mtime_iso(node),
    }


def _same(a: Node, b: Node) -> bool:
    if a.type != b.type:
        return False
    if a.type == DIR:
        return a.subtree == b.subtree
    return (a.size, a.mtime_ns, a.content, a.target) == (b.size, b.mtime_ns, b.content, b.target)


def compare(device: Device, base_ref: str, other_ref: str, path: str | None) -> Comparison:
    """What changed in a folder (recursively) from ``base`` to ``other``:
    added, changed (files whose content, size or time differ; a type change)
    and removed entries, at most MAX_DIFFS in all."""
    repo = open_repository(device)
    base, other = find_snapshot(repo, base_ref), find_snapshot(repo, other_ref)
    parts = parse_path(path)
    out = Comparison(
        base, other, "/" + "/".join(p.decode("utf-8", "backslashreplace") for p in parts)
    )

    def tree_of(snap):
        try:
            node = locate(repo, snap, parts)
        except NotFound:
            return None
        if node is None:
            return snap.tree
        return node.subtree if node.type == DIR else None

    def named(nodes, snap):
        res = {}
        for n in nodes:
            try:
                res[checked_name(n, snap)] = n
            except UnsafeName:
                out.skipped.append(printable_name(n.name))
        return res

    def count() -> int:
        return len(out.added) + len(out.changed) + len(out.removed)

    def all_under(prefix, node, snap, into):
        into.append(_summary(prefix, node))
        if node.type == DIR and node.subtree:
            for name, child in sorted(named(read_dir(repo, node.subtree), snap).items()):
                if count() >= MAX_DIFFS:
                    out.truncated = True
                    return
                all_under(f"{prefix}/{name}", child, snap, into)

    stack = [(out.path.rstrip("/"), tree_of(base), tree_of(other))]
    while stack:
        prefix, ta, tb = stack.pop()
        if ta == tb:
            continue
        a = named(read_dir(repo, ta), base) if ta else {}
        b = named(read_dir(repo, tb), other) if tb else {}
        for name in sorted(set(a) | set(b)):
            if count() >= MAX_DIFFS:
                out.truncated = True
                return out
            p = f"{prefix}/{name}"
            na, nb = a.get(name), b.get(name)
            if na is None:
                all_under(p, nb, other, out.added)
            elif nb is None:
                all_under(p, na, base, out.removed)
            elif na.type == DIR and nb.type == DIR:
                stack.append((p, na.subtree, nb.subtree))
            elif not _same(na, nb):
                out.changed.append(_summary(p, nb))
    return out
