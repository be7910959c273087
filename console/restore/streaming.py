"""A file's bytes streamed chunk by chunk, decrypted with a small
read-ahead (memory stays bounded whatever the size), and the one HTTP byte
range a download honours."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from agent.engine.errors import CorruptObject
from agent.engine.repository import Repository
from agent.engine.tree import Node
from console.restore.errors import RangeNotSatisfiable

#: chunks decrypted ahead of the one being sent
READ_AHEAD = 4


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range as (start, end
    inclusive); None without a header. Several ranges: the whole file."""
    if not header:
        return None
    header = header.strip()
    if not header.startswith("bytes=") or "," in header:
        return None
    spec = header[6:].strip()
    first, _, last = spec.partition("-")
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                raise RangeNotSatisfiable("Empty suffix range.", size)
            return max(0, size - n), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start < 0 or start >= size or end < start:
        raise RangeNotSatisfiable(f"The file has {size} bytes.", size)
    return start, min(end, size - 1)


def _read_ahead(repo: Repository, blob_ids: list[bytes]) -> Iterator[bytes]:
    """The plaintext of ``blob_ids`` in order, at most READ_AHEAD decrypted ahead."""
    if not blob_ids:
        return
    with ThreadPoolExecutor(max_workers=READ_AHEAD) as pool:
        pending = []
        it = iter(blob_ids)
        for blob in it:
            pending.append(pool.submit(repo.read_blob, blob))
            if len(pending) >= READ_AHEAD:
                break
        while pending:
            data = pending.pop(0).result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(repo.read_blob, nxt))
            yield data


def file_bytes(repo: Repository, node: Node, start: int = 0, end: int | None = None):
    """The file's bytes ``start``..``end`` (inclusive), decrypted chunk by chunk."""
    end = node.file_size - 1 if end is None else end
    wanted, pos, first_skip = [], 0, None
    for blob in node.chunk_ids:
        entry = repo.index.get(blob)
        if entry is None:
            raise CorruptObject(f"blob {blob.hex()[:16]} is not in the index", blob=blob)
        length = entry.raw_length
        if pos + length > start and pos <= end:
            if first_skip is None:
                first_skip = start - pos
            wanted.append(blob)
        pos += length
        if pos > end:
            break
    sent, todo = 0, end - start + 1
    for i, data in enumerate(_read_ahead(repo, wanted)):
        piece = memoryview(data)[first_skip:] if i == 0 else memoryview(data)
        piece = piece[: todo - sent]
        sent += len(piece)
        yield bytes(piece)
        if sent >= todo:
            return
