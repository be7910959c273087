"""Downloading from a snapshot: a file (optionally one byte range) or a
folder as a zip, streamed and audited."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from agent.engine.repository import Repository
from agent.engine.tree import DIR, FILE
from console.audit.services import Actor, record
from console.fleet.models import Device
from console.restore.errors import RestoreError
from console.restore.repositories import open_repository
from console.restore.snapshots import checked_name, find_snapshot, locate, parse_path
from console.restore.streaming import file_bytes, parse_range
from console.restore.zipping import zip_entries, zip_stream


@dataclass
class Download:
    kind: str  # "file" | "zip"
    filename: str
    size: int | None  # bytes of the file (None: a zip, length not known)
    content_range: tuple[int, int] | None
    body: Iterator[bytes]
    files: int
    skipped: list[str]
    audit: dict = field(default_factory=dict)


def download(
    actor: Actor, device: Device, ref: str, path: str | None, range_header: str | None = None
) -> Download:
    """A file (optionally one byte range) or a folder as a zip, streamed;
    audited (``device.download``) with the snapshot, path and bytes sent
    (recorded when the download starts: for a zip, the bytes of the files it
    holds)."""
    dl = prepare_download(open_repository(device), ref, path, range_header)
    record(actor, "device.download", device, after=dl.audit)
    return dl


def prepare_download(
    repo: Repository, ref: str, path: str | None, range_header: str | None = None
) -> Download:
    snap = find_snapshot(repo, ref)
    parts = parse_path(path)
    node = locate(repo, snap, parts)
    shown = "/" + "/".join(p.decode("utf-8", "backslashreplace") for p in parts)
    if node is not None and node.type == FILE:
        name = checked_name(node, snap)
        size = node.file_size
        rng = parse_range(range_header, size) if size else None
        start, end = rng if rng else (0, size - 1)
        audit = {
            "snapshot": snap.id,
            "path": shown,
            "kind": "file",
            "bytes": end - start + 1 if size else 0,
            "range": f"{start}-{end}" if rng else "",
        }
        body = file_bytes(repo, node, start, end) if size else iter([b""])
        return Download("file", name, size, rng, body, 1, [], audit)
    if node is not None and node.type != DIR:
        raise RestoreError(f"{shown} is a {node.type}, not a file or a folder.")
    tree = snap.tree if node is None else node.subtree
    skipped: list[str] = []
    entries = list(zip_entries(repo, snap, tree, "", skipped)) if tree else []
    files = [n for p, n in entries if n.type == FILE]
    audit = {
        "snapshot": snap.id,
        "path": shown,
        "kind": "zip",
        "bytes": sum(n.file_size for n in files),
        "files": len(files),
        "skipped": skipped[:100],
    }
    base = checked_name(node, snap) if node is not None else (snap.hostname or "snapshot")
    filename = f"{base}-{snap.short_id}.zip"
    body = zip_stream(repo, snap, entries, skipped, [0, 0])
    return Download("zip", filename, None, None, body, len(files), skipped, audit)
