"""Rebuilding the index from the packs themselves.

Every pack carries its own encrypted header listing its blobs
(docs/format.md, "Packs"), so the index is redundant: when index objects are
damaged or lost, or packs were stored by a backup that was killed before it
wrote its index, :func:`rebuild_index` reads the headers of the packs the
index does not cover and writes new index objects for them. It only adds
objects (never deletes), so it is safe while backups run.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from agent.engine.crypto import OVERHEAD
from agent.engine.errors import CorruptObject, UnsupportedVersion
from agent.engine.pack import PACK_MAGIC, TRAILER, BlobEntry, read_pack_header
from agent.engine.repository import Repository
from agent.engine.store import StoreError

#: packs per index object written by the rebuild
PACKS_PER_INDEX = 256


@dataclass
class RebuildReport:
    packs_scanned: int = 0
    packs_indexed: int = 0
    blobs_indexed: int = 0
    index_objects: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (pack key, reason)


def read_header_of(repo: Repository, key: str) -> list[BlobEntry]:
    """A pack's header with two ranged reads (its trailer, then the header)."""
    size = repo.store.size(key)
    if size < len(PACK_MAGIC) + TRAILER.size + OVERHEAD:
        raise CorruptObject(f"pack {key} is truncated ({size} bytes)")
    (sealed_len,) = TRAILER.unpack(repo.store.get_range(key, size - TRAILER.size, TRAILER.size))
    if sealed_len + TRAILER.size + len(PACK_MAGIC) > size:
        raise CorruptObject(f"pack {key} has an invalid header length")
    tail = repo.store.get_range(key, size - TRAILER.size - sealed_len, sealed_len + TRAILER.size)
    head = repo.store.get_range(key, 0, len(PACK_MAGIC))
    # read_pack_header needs the magic, the sealed header and the trailer; the
    # blob offsets inside the header are relative to the real pack's start.
    return read_pack_header(repo.cipher, head + tail, what=f"pack {key}")


def rebuild_index(
    repo: Repository,
    *,
    all_packs: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RebuildReport:
    """Index every pack the current index does not know (``all_packs``: every
    pack), from the packs' own headers."""
    report = RebuildReport()
    known = set() if all_packs else repo.index.pack_ids()
    keys = [k for k in repo.store.list("data/") if k.rsplit("/", 1)[-1] not in known]
    report.packs_scanned = len(keys)

    def scan(key):
        try:
            return key, read_header_of(repo, key), None
        except (CorruptObject, UnsupportedVersion, StoreError) as exc:
            return key, None, str(exc)

    batch: dict[str, list[BlobEntry]] = {}

    def flush():
        if batch:
            report.index_objects.append(repo.save_index(dict(batch)))
            repo.index.merge(batch)
            batch.clear()

    with ThreadPoolExecutor(max_workers=8) as pool:
        for done, (key, entries, error) in enumerate(pool.map(scan, keys), 1):
            if error:
                report.unreadable.append((key, error))
            elif entries:
                batch[key.rsplit("/", 1)[-1]] = entries
                report.packs_indexed += 1
                report.blobs_indexed += len(entries)
                if len(batch) >= PACKS_PER_INDEX:
                    flush()
            if progress is not None:
                progress(done, len(keys))
    flush()
    return report
