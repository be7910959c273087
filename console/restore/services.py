"""Restore without the device (issue 11): browse, compare, search and
download a device's snapshots on the console's own processes.

The console opens the device repository with its full-rights storage
credentials (``targets.admin_store``) and the organisation key, like
maintenance does, so a device that is offline or revoked is browsed the same
as an online one. Nothing here writes plaintext to disk:

* **Cache.** Repositories are opened with the engine's object cache under
  ``VAR_DIR/restore-cache/<repository id>/`` (directories 0700, files 0600):
  index objects and tree packs as stored, i.e. *ciphertext* named by their
  BLAKE3 (a read is re-hashed, so the cache can never serve a damaged or
  stale object), and ``counts.sqlite`` (tree id -> entries; ids and numbers
  only). Its size is the repository's index plus its tree packs (measured in
  docs/performance.md). Decrypted trees live only in memory: an opened
  repository (index + a bounded LRU of tree packs) is kept per process for
  ``REPO_TTL`` seconds, then reopened (new backups appear).
* **Names.** Every stored name becomes a path component or a zip entry name
  only through ``agent.engine.paths.safe_name`` (a compromised PC writes
  hostile names): a name it refuses is skipped and reported, never joined.
* **Downloads** stream chunk by chunk, decrypting as they go (a small
  read-ahead), so memory stays bounded whatever the size; a file honours one
  HTTP byte range (resumable), a folder is a ZIP64 zip written to a
  non-seekable sink.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fnmatch
import os
import secrets
import sqlite3
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from agent.engine.cache import ObjectCache
from agent.engine.errors import (
    AmbiguousSnapshot,
    CorruptObject,
    EngineError,
    NotARepository,
    SnapshotNotFound,
    UnsafeName,
)
from agent.engine.paths import POSIX, WINDOWS, flavour_named, printable_name, safe_name
from agent.engine.repository import Repository
from agent.engine.snapshot import Snapshot
from agent.engine.store import StoreError
from agent.engine.tree import DIR, FILE, Node
from console.audit.services import Actor, record
from console.core import keys
from console.fleet.models import Device
from console.storage import targets

#: an opened repository is reused this long by the same process
REPO_TTL = 60.0
#: opened repositories kept per process
REPOS_KEPT = 8
#: entries on one page of a folder listing (default and most)
PAGE = 200
MAX_PAGE = 1000
#: a path given by a caller: at most this long
MAX_PATH = 4096
#: an absolute path with no ``.`` or ``..`` component (what ``parse_path``
#: takes), for the API's schema
PATH_PATTERN = r"^(?:/(?:[^/\x00.][^/\x00]*|\.[^/\x00.][^/\x00]*|\.\.[^/\x00]+)?)+$"
#: one file name or glob, not blank
PATTERN_PATTERN = r"^[^/\x00]*[^/\x00\s][^/\x00]*$"
#: differences returned by a compare (more: truncated)
MAX_DIFFS = 5000
#: search bounds
SEARCH_LIMIT = 200
MAX_SEARCH_LIMIT = 1000
SEARCH_SECONDS = 10.0
SEARCH_SNAPSHOTS = 30  # newest snapshots searched per device
SEARCH_DEVICES = 500  # devices searched by a fleet-wide search
MAX_PATTERN = 200
#: chunks decrypted ahead of the one being sent
READ_AHEAD = 4


class RestoreError(Exception):
    """A refusal with the HTTP status it maps to."""

    status = 400


class NotFound(RestoreError):
    status = 404


class Unavailable(RestoreError):
    """The repository cannot be read now (storage settings, storage down,
    damage): 409, the state of the installation, not a server fault."""

    status = 409


class RangeNotSatisfiable(RestoreError):
    status = 416

    def __init__(self, message: str, size: int):
        super().__init__(message)
        self.size = size


# --- opening -------------------------------------------------------------------------
_repos: OrderedDict[str, tuple[float, Repository]] = OrderedDict()
_repos_lock = threading.Lock()


def cache_dir() -> Path:
    path = Path(settings.VAR_DIR) / "restore-cache"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


class PrivateCache(ObjectCache):
    """The engine's object cache with owner-only files (0600) and folders
    (0700), whatever the process's umask: it holds ciphertext, but which
    objects a repository has, and their sizes, are the organisation's business."""

    def __init__(self, root, repository_id: str):
        super().__init__(root, repository_id)
        os.chmod(self.root, 0o700)

    def put(self, kind: str, object_id: str, data) -> None:
        path = self._path(kind, object_id)
        tmp = path.parent / f".tmp-{secrets.token_hex(6)}"
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


class TreeCounts:
    """How many entries each tree (by its id) holds, kept on disk beside the
    object cache (``counts.sqlite``, 0600): a folder listing shows each
    subfolder's count, which otherwise means decoding every subfolder's tree
    (200 folders of 1,000 files: 200,000 entries decoded for one screen).
    Trees are immutable and named by their content, so a count never goes
    stale. It holds ids and numbers only, no names."""

    def __init__(self, root: Path):
        self.path = root / "counts.sqlite"
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS counts (tree BLOB PRIMARY KEY, n INTEGER)")
            self._local.db = db
        return db

    def get(self, ids: list[bytes]) -> dict[bytes, int]:
        if not ids:
            return {}
        try:
            rows = self._db().execute(
                f"SELECT tree, n FROM counts WHERE tree IN ({','.join('?' * len(ids))})", ids
            )
            return {bytes(t): n for t, n in rows}
        except sqlite3.Error:
            return {}

    def put(self, counts: dict[bytes, int]) -> None:
        if not counts:
            return
        with contextlib.suppress(sqlite3.Error):
            self._db().executemany(
                "INSERT OR IGNORE INTO counts (tree, n) VALUES (?, ?)", list(counts.items())
            )


def open_cached(store, key: bytes, root: Path | None = None) -> Repository:
    """A repository opened with the organisation key, its index objects and
    tree packs cached (as stored: ciphertext) under ``root``."""
    repo = Repository.open(store, key=key, load_index=False)
    repo.cache = PrivateCache(root or cache_dir(), repo.id)
    repo.load_index()
    repo.tree_counts = TreeCounts(repo.cache.root)
    return repo


def child_counts(repo: Repository, ids: list[bytes]) -> dict[bytes, int | None]:
    """Entries in each of the trees ``ids`` (None: unreadable), from the
    on-disk counts when known."""
    counts = getattr(repo, "tree_counts", None)
    known: dict[bytes, int | None] = counts.get(ids) if counts else {}
    fresh = {}
    for tree in ids:
        if tree in known:
            continue
        try:
            fresh[tree] = len(repo.load_nodes(tree))
        except (CorruptObject, StoreError):
            known[tree] = None
    if counts:
        counts.put(fresh)
    return known | fresh


def open_repository(device: Device) -> Repository:
    """The device's repository opened with the organisation key (cached per
    process for REPO_TTL seconds)."""
    key = str(device.pk)
    now = time.monotonic()
    with _repos_lock:
        hit = _repos.get(key)
        if hit is not None and now - hit[0] < REPO_TTL:
            _repos.move_to_end(key)
            return hit[1]
    try:
        repo = open_cached(targets.admin_store(targets.target(), key), keys.org_key())
    except NotARepository:
        raise NotFound("This device has no backups in storage.") from None
    except (EngineError, StoreError) as exc:
        raise Unavailable(f"The device's repository cannot be opened: {exc}") from None
    with _repos_lock:
        _repos[key] = (now, repo)
        while len(_repos) > REPOS_KEPT:
            _repos.popitem(last=False)
    return repo


def forget_cached() -> None:
    """Drop opened repositories (tests; a changed storage target)."""
    with _repos_lock:
        _repos.clear()


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


# --- paths ---------------------------------------------------------------------------
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


def _src(snap: Snapshot):
    return flavour_named(getattr(snap, "path_flavour", None))


def checked_name(node: Node, snap: Snapshot) -> str:
    """The entry's name as shown and put in paths; UnsafeName if hostile.
    The gate is ``safe_name``; its result is shown as text."""
    safe = safe_name(node.name, _src(snap), POSIX)
    return safe.decode("utf-8", "backslashreplace")


def _match(nodes: list[Node], part: bytes, snap: Snapshot) -> Node | None:
    for node in nodes:
        if node.name == part or node.display_name == part.decode("utf-8", "surrogateescape"):
            checked_name(node, snap)  # a hostile name is never walked into
            return node
    return None


def _load(repo: Repository, tree_id) -> list[Node]:
    try:
        return repo.load_nodes(tree_id)
    except (CorruptObject, StoreError) as exc:
        raise Unavailable(f"A directory listing cannot be read: {exc}") from None


def locate(repo: Repository, snap: Snapshot, parts: list[bytes]) -> Node | None:
    """The node at ``parts`` (None: the snapshot's root)."""
    nodes = _load(repo, snap.tree)
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
            nodes = _load(repo, node.subtree)
    return node


def _mtime(node: Node) -> str | None:
    if node.mtime_ns is None:
        return None
    try:
        return dt.datetime.fromtimestamp(node.mtime_ns / 1e9, tz=dt.UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


# --- browsing ------------------------------------------------------------------------
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
    return (_load(repo, tree) if tree else []), shown


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
            "mtime": _mtime(node),
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


# --- compare -------------------------------------------------------------------------
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
        "mtime": _mtime(node),
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
            for name, child in sorted(named(_load(repo, node.subtree), snap).items()):
                if count() >= MAX_DIFFS:
                    out.truncated = True
                    return
                all_under(f"{prefix}/{name}", child, snap, into)

    stack = [(out.path.rstrip("/"), tree_of(base), tree_of(other))]
    while stack:
        prefix, ta, tb = stack.pop()
        if ta == tb:
            continue
        a = named(_load(repo, ta), base) if ta else {}
        b = named(_load(repo, tb), other) if tb else {}
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


# --- search --------------------------------------------------------------------------
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
    match = matcher(pattern)
    started = time.monotonic()
    versions: list[dict] = []
    truncated = False
    n_dev = n_snap = 0
    for device in devices[:SEARCH_DEVICES]:
        if truncated:
            break
        try:
            repo = open_repository(device)
            snaps = repo.snapshots()
        except (RestoreError, EngineError, StoreError):  # no backups yet, unreadable
            continue
        n_dev += 1
        seen_trees: set[tuple[str, bytes]] = set()
        seen_versions: set[tuple[str, int, int | None]] = set()
        for snap in reversed(snaps[-SEARCH_SNAPSHOTS:]):
            n_snap += 1
            stack = [("", bytes.fromhex(snap.tree))]
            while stack:
                if time.monotonic() - started > seconds:
                    truncated = True
                    break
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
                    elif node.type == FILE and match(name):
                        key = (path, node.file_size, node.mtime_ns)
                        if key in seen_versions:
                            continue
                        seen_versions.add(key)
                        versions.append(
                            {
                                "device": str(device.pk),
                                "hostname": device.hostname,
                                "snapshot": snap.id,
                                "snapshot_time": snap.time,
                                "path": path,
                                "size": node.file_size,
                                "mtime": _mtime(node),
                            }
                        )
                        if len(versions) >= limit:
                            truncated = True
                            break
                if truncated:
                    break
            if truncated:
                break
    return SearchResult(versions, truncated, n_dev, n_snap, round(time.monotonic() - started, 3))


# --- download ------------------------------------------------------------------------
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
    safe = safe_name(node.name, _src(snap), WINDOWS)
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


def _zip_entries(repo, snap, tree, prefix, skipped) -> Iterator[tuple[str, Node]]:
    """(zip path, node) of files and folders under ``tree``, hostile names
    skipped (and listed in ``skipped``), symlinks and special files left out."""
    stack = [(prefix, tree)]
    while stack:
        base, tid = stack.pop()
        children = []
        for node in _load(repo, tid):
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


def _zip_stream(repo, snap, entries, skipped, counter) -> Iterator[bytes]:
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
    entries = list(_zip_entries(repo, snap, tree, "", skipped)) if tree else []
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
    body = _zip_stream(repo, snap, entries, skipped, [0, 0])
    return Download("zip", filename, None, None, body, len(files), skipped, audit)
