"""Repack: the referenced blobs of partly used packs copied into new packs,
so prune can mark the old ones (agent/engine/prune.py). Each blob is
decrypted and its id re-computed on the way: a damaged blob is never copied,
its pack is left alone and reported."""

from __future__ import annotations

from agent.engine import compress
from agent.engine.errors import CorruptObject, UnsupportedVersion
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
from agent.engine.repository import Repository
from agent.engine.store import ObjectExists, StoreError


def repack(
    repo: Repository,
    packs: list[str],
    pack_entries: dict[str, list[BlobEntry]],
    locations: dict[bytes, set[str]],
    referenced: set[bytes],
    condemned: set[str],
    warnings: list[str],
) -> tuple[list[str], int]:
    """Copy the referenced blobs of ``packs`` that have no copy outside
    ``packs`` and ``condemned`` into new packs, store them and then their
    index object. Returns the packs whose blobs are now all elsewhere (to be
    marked) and the number of packs written; packs that could not be read
    or verified are left out, with a line in ``warnings``."""
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
            payloads = _verified_payloads(
                repo, pid, pack_entries[pid], locations, referenced, chosen, copied
            )
        except (CorruptObject, UnsupportedVersion, StoreError) as exc:
            warnings.append(f"{pack_key(pid)}: {exc} (not repacked)")
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
    return done, len(written)


def _verified_payloads(repo, pid, entries, locations, referenced, chosen, copied):
    """(entry, sealed-then-opened payload) of the blobs of pack ``pid`` to copy."""
    data = repo.store.get(pack_key(pid))
    payloads = []
    for e in entries:
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
    return payloads
