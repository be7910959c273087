"""A record, in the agent's state directory, of every snapshot the agent
created and has not yet released.

A snapshot is written here *before* it is taken (so a crash between taking
and recording cannot leak one) and removed after it is released. On the next
start each provider's ``cleanup_stale`` reads its entries and removes what is
still there. One JSON file, replaced atomically, so a crash mid-write leaves
the old or the new version, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FILENAME = "snapshots.json"


class Ledger:
    def __init__(self, state_dir: str | os.PathLike[str] | None):
        self.path = Path(state_dir) / FILENAME if state_dir is not None else None
        self._lock = threading.Lock()
        self._memory: list[dict[str, Any]] = []  # used when there is no state dir

    def entries(self, provider: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            items = self._load()
        return [e for e in items if provider is None or e.get("provider") == provider]

    def add(self, provider: str, key: str, **details: Any) -> None:
        with self._lock:
            items = [e for e in self._load() if not (e["provider"] == provider and e["key"] == key)]
            items.append(
                {"provider": provider, "key": key, "created": time.time(), "pid": os.getpid()}
                | details
            )
            self._save(items)

    def update(self, provider: str, key: str, **details: Any) -> None:
        with self._lock:
            items = self._load()
            for e in items:
                if e["provider"] == provider and e["key"] == key:
                    e.update(details)
            self._save(items)

    def remove(self, provider: str, key: str) -> None:
        with self._lock:
            items = self._load()
            kept = [e for e in items if not (e["provider"] == provider and e["key"] == key)]
            if len(kept) != len(items):
                self._save(kept)

    def _load(self) -> list[dict[str, Any]]:
        if self.path is None:
            return [dict(e) for e in self._memory]
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            # A damaged ledger must not stop backups; the stale snapshots it
            # named are then left for an admin (and logged by the caller).
            return []
        return [e for e in data.get("snapshots", []) if isinstance(e, dict)]

    def _save(self, items: list[dict[str, Any]]) -> None:
        if self.path is None:
            self._memory = [dict(e) for e in items]
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".snapshots.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump({"version": 1, "snapshots": items}, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
