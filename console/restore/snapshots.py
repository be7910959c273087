"""Resolving a snapshot and a path in it: a snapshot reference, a caller's
path, and the walk down to its node. Every stored name passes through
``agent.engine.paths.safe_name`` before it is shown or walked into (a
compromised PC writes hostile names)."""

from __future__ import annotations

import datetime as dt

from agent.engine.errors import AmbiguousSnapshot, CorruptObject, SnapshotNotFound, UnsafeName
from agent.engine.paths import POSIX, flavour_named, safe_name
from agent.engine.repository import Repository
from agent.engine.snapshot import Snapshot
from agent.engine.store import StoreError
from agent.engine.tree import DIR, Node
from console.restore.errors import NotFound, RestoreError, Unavailable

#: a path given by a caller: at most this long
MAX_PATH = 4096
#: an absolute path with no ``.`` or ``..`` component (what ``parse_path``
#: takes), for the API's schema
PATH_PATTERN = r"^(?:/(?:[^/\x00.][^/\x00]*|\.[^/\x00.][^/\x00]*|\.\.[^/\x00]+)?)+$"


def find_snapshot(repo: Repository, ref: str) -> Snapshot:
    """Full id, unique prefix or ``latest``."""
    ref = (ref or "").strip().lower()
    if len(ref) > 64:
        raise NotFound("A snapshot id is at most 64 hexadecimal characters.")
    try:
        return repo.find_snapshot(ref)
    except AmbiguousSnapshot as exc:
        raise RestoreError(str(exc)) from None
    except SnapshotNotFound as exc:
        raise NotFound(str(exc)) from None
    except (CorruptObject, StoreError) as exc:
        raise Unavailable(f"The snapshot cannot be read: {exc}") from None


def parse_path(text: str | None) -> list[bytes]:
    """``/abs/dir`` as repository path components; ``.``/``..``/empty refused."""
    text = text or "/"
    if len(text) > MAX_PATH:
        raise RestoreError(f"A path is at most {MAX_PATH} characters.")
    if not text.startswith("/"):
        raise RestoreError("Give an absolute path in the snapshot, starting with /.")
    if "\0" in text:
        raise RestoreError("A path cannot contain NUL.")
    parts = [p for p in text.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise RestoreError("A path cannot contain . or .. components.")
    return [p.encode("utf-8", "surrogateescape") for p in parts]


def source_flavour(snap: Snapshot):
    return flavour_named(getattr(snap, "path_flavour", None))


def checked_name(node: Node, snap: Snapshot) -> str:
    """The entry's name as shown and put in paths; UnsafeName if hostile.
    The gate is ``safe_name``; its result is shown as text."""
    safe = safe_name(node.name, source_flavour(snap), POSIX)
    return safe.decode("utf-8", "backslashreplace")


def _match(nodes: list[Node], part: bytes, snap: Snapshot) -> Node | None:
    for node in nodes:
        if node.name == part or node.display_name == part.decode("utf-8", "surrogateescape"):
            checked_name(node, snap)  # a hostile name is never walked into
            return node
    return None


def read_dir(repo: Repository, tree_id) -> list[Node]:
    try:
        return repo.load_nodes(tree_id)
    except (CorruptObject, StoreError) as exc:
        raise Unavailable(f"A directory listing cannot be read: {exc}") from None


def locate(repo: Repository, snap: Snapshot, parts: list[bytes]) -> Node | None:
    """The node at ``parts`` (None: the snapshot's root)."""
    nodes = read_dir(repo, snap.tree)
    node = None
    for i, part in enumerate(parts):
        try:
            node = _match(nodes, part, snap)
        except UnsafeName:
            raise RestoreError("The path names an entry whose stored name is unsafe.") from None
        if node is None:
            shown = "/" + "/".join(p.decode("utf-8", "backslashreplace") for p in parts[: i + 1])
            raise NotFound(f"No {shown} in this snapshot.")
        if i < len(parts) - 1:
            if node.type != DIR or not node.subtree:
                raise NotFound(f"{node.display_name} is not a folder.")
            nodes = read_dir(repo, node.subtree)
    return node


def mtime_iso(node: Node) -> str | None:
    if node.mtime_ns is None:
        return None
    try:
        return dt.datetime.fromtimestamp(node.mtime_ns / 1e9, tz=dt.UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None
