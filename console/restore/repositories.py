"""Opening a device's repository for restore (issue 11): with the
organisation key and full-rights storage credentials, its index objects and
tree packs cached as stored (ciphertext) under ``VAR_DIR/restore-cache/``, the
opened repository kept per process for ``REPO_TTL`` seconds."""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path

from django.conf import settings

from agent.engine.cache import ObjectCache
from agent.engine.errors import CorruptObject, EngineError, NotARepository
from agent.engine.repository import Repository
from agent.engine.store import StoreError
from console.core import keys
from console.fleet.models import Device
from console.restore.errors import NotFound, Unavailable
from console.storage import targets

#: an opened repository is reused this long by the same process
REPO_TTL = 60.0
#: opened repositories kept per process
REPOS_KEPT = 8

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
