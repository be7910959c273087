"""A folder of a snapshot, one page at a time (sorted folders first, an
opaque cursor), each subfolder with its entry count."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from agent.engine.errors import UnsafeName
from agent.engine.paths import printable_name
from agent.engine.repository import Repository
from agent.engine.snapshot import Snapshot
from agent.engine.tree import DIR, FILE, Node
from console.fleet.models import Device
from console.restore.errors import RestoreError
from console.restore.repositories import child_counts, open_repository
from console.restore.snapshots import (
    checked_name,
    find_snapshot,
    locate,
    mtime_iso,
    parse_path,
    read_dir,
)

#: entries on one page of a folder listing (default and most)
PAGE = 200
MAX_PAGE = 1000


@dataclass
class Listing:
    snapshot: Snapshot
    path: str
    entries: list[dict]
    skipped: list[str]
    total: int
    next_cursor: str | None


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, value = text.split(":", 1)
        offset = int(value)
    except (ValueError, UnicodeDecodeError):
        raise RestoreError("The cursor is not one this listing gave.") from None
    if kind != "o" or offset < 0:
        raise RestoreError("The cursor is not one this listing gave.")
    return offset


def _dir_nodes(repo, snap, parts) -> tuple[list[Node], str]:
    node = locate(repo, snap, parts)
    if node is not None and node.type != DIR:
        raise RestoreError("The path is a file, not a folder: download it instead.")
    tree = snap.tree if node is None else node.subtree
    shown = "/" + "/".join(p.decode("utf-8", "backslashreplace") for p in parts)
    return (read_dir(repo, tree) if tree else []), shown


def list_folder(
    device: Device, ref: str, path: str | None, cursor: str | None = None, limit: int = PAGE
) -> Listing:
    """A page of a folder of the device's snapshot ``ref``."""
    if not 1 <= limit <= MAX_PAGE:
        raise RestoreError(f"A page holds 1 to {MAX_PAGE} entries.")
    return folder_page(open_repository(device), ref, path, cursor, limit)


def folder_page(
    repo: Repository, ref: str, path: str | None, cursor: str | None = None, limit: int = PAGE
) -> Listing:
    snap = find_snapshot(repo, ref)
    nodes, shown = _dir_nodes(repo, snap, parse_path(path))
    safe, skipped = [], []
    for node in nodes:
        try:
            safe.append((checked_name(node, snap), node))
        except UnsafeName:
            skipped.append(printable_name(node.name))
    safe.sort(key=lambda x: (x[1].type != DIR, x[0].casefold(), x[0]))
    start = _offset(cursor)
    page = safe[start : start + limit]
    counts = child_counts(repo, [n.subtree for _, n in page if n.type == DIR and n.subtree])
    entries = []
    for name, node in page:
        entry = {
            "name": name,
            "type": str(node.type),
            "size": node.file_size if node.type == FILE else None,
            "mtime": mtime_iso(node),
            "children": None,
        }
        if node.type == DIR and node.subtree:
            entry["children"] = counts.get(node.subtree)
        elif node.type == DIR:
            entry["children"] = 0
        entries.append(entry)
    more = start + limit < len(safe)
    return Listing(
        snap, shown, entries, skipped, len(safe), _cursor(start + limit) if more else None
    )
