"""A local cache of immutable repository objects (index objects, tree packs).

Over S3, opening a repository means one GET per index object and an
incremental backup reads its parent's tree packs; both only grow with the
number of backups. Every cached object is named by the BLAKE3 of its bytes,
so the cache can never serve a stale or damaged object: each read is
re-hashed, and a mismatch is treated as a miss. It holds only what the store
holds (ciphertext), so it needs no protection beyond the user's own files.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import blake3


def default_cache_dir() -> Path:
    if os.environ.get("CAIRN_CACHE_DIR"):
        return Path(os.environ["CAIRN_CACHE_DIR"])
    if os.name == "nt":  # pragma: no cover
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "Cairn" / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cairn"


class ObjectCache:
    def __init__(self, root: str | os.PathLike, repository_id: str):
        self.root = Path(root) / repository_id
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, kind: str, object_id: str) -> Path:
        if not object_id.isalnum():
            raise ValueError(f"bad object id {object_id!r}")
        return self.root / kind / object_id

    def get(self, kind: str, object_id: str) -> bytes | None:
        try:
            data = self._path(kind, object_id).read_bytes()
        except OSError:
            return None
        if blake3.blake3(data, max_threads=1).hexdigest() != object_id:
            self.discard(kind, object_id)
            return None
        return data

    def put(self, kind: str, object_id: str, data) -> None:
        """Best effort: a full disk or a read-only home only costs speed."""
        path = self._path(kind, object_id)
        tmp = path.parent / f".tmp-{secrets.token_hex(6)}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def discard(self, kind: str, object_id: str) -> None:
        with contextlib.suppress(OSError):
            self._path(kind, object_id).unlink()

    def keep_only(self, kind: str, object_ids: set[str]) -> None:
        """Drop cached objects the repository no longer has (after maintenance)."""
        directory = self.root / kind
        if not directory.is_dir():
            return
        for entry in os.scandir(directory):
            if entry.name not in object_ids:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
