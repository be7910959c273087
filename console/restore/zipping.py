"""A folder as a ZIP64 zip written in order to a non-seekable sink, names
made safe for Windows, hostile names and special files listed in
``CAIRN-SKIPPED.txt`` instead."""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Iterator

from agent.engine.errors import UnsafeName
from agent.engine.paths import WINDOWS, printable_name, safe_name
from agent.engine.snapshot import Snapshot
from agent.engine.tree import DIR, FILE, Node
from console.restore.snapshots import read_dir, source_flavour
from console.restore.streaming import file_bytes


class _Sink:
    """A non-seekable sink for zipfile: it writes data descriptors, so the
    zip is produced strictly in order."""

    def __init__(self):
        self.buf = bytearray()
        self.written = 0

    def write(self, data) -> int:
        self.buf += data
        self.written += len(data)
        return len(data)

    def tell(self):
        raise OSError("not seekable")

    def flush(self):
        pass

    def take(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        return out


def zip_name(node: Node, snap: Snapshot) -> str:
    """A stored name as one zip path component: ``safe_name`` for Windows (the
    strictest target; characters it cannot hold are escaped as U+F0xx, which
    Cygwin/WSL show as the original), as text."""
    safe = safe_name(node.name, source_flavour(snap), WINDOWS)
    return safe.decode("utf-8", "replace")


def _zip_time(node: Node) -> tuple:
    try:
        t = dt.datetime.fromtimestamp((node.mtime_ns or 0) / 1e9, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        t = dt.datetime(1980, 1, 1, tzinfo=dt.UTC)
    t = min(
        max(t, dt.datetime(1980, 1, 1, tzinfo=dt.UTC)), dt.datetime(2107, 12, 31, tzinfo=dt.UTC)
    )
    return (t.year, t.month, t.day, t.hour, t.minute, t.second)


def zip_entries(repo, snap, tree, prefix, skipped) -> Iterator[tuple[str, Node]]:
    """(zip path, node) of files and folders under ``tree``, hostile names
    skipped (and listed in ``skipped``), symlinks and special files left out."""
    stack = [(prefix, tree)]
    while stack:
        base, tid = stack.pop()
        children = []
        for node in read_dir(repo, tid):
            try:
                name = zip_name(node, snap)
            except UnsafeName:
                skipped.append(f"{base}/{printable_name(node.name)}")
                continue
            path = f"{base}/{name}" if base else name
            if node.type == DIR:
                yield path + "/", node
                if node.subtree:
                    children.append((path, node.subtree))
            elif node.type == FILE:
                yield path, node
            else:
                skipped.append(f"{path} ({node.type}, not a regular file)")
        stack.extend(reversed(children))


def zip_stream(repo, snap, entries, skipped, counter) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path, node in entries:
            info = zipfile.ZipInfo(path, date_time=_zip_time(node))
            if node.type == DIR:
                zf.writestr(info, b"")
            else:
                info.compress_type = zipfile.ZIP_STORED
                info.file_size = node.file_size
                with zf.open(
                    info, "w", force_zip64=node.file_size >= zipfile.ZIP64_LIMIT // 2
                ) as w:
                    for piece in file_bytes(repo, node) if node.file_size else ():
                        w.write(piece)
                        counter[0] += len(piece)
                        if len(sink.buf) >= 1 << 20:
                            yield sink.take()
                counter[1] += 1
            if sink.buf:
                yield sink.take()
        if skipped:
            note = "Entries not included (unsafe stored names or not regular files):\n"
            zf.writestr("CAIRN-SKIPPED.txt", note + "\n".join(skipped) + "\n")
    yield sink.take()
