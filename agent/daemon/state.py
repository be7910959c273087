"""The agent's local state: a small SQLite database under its home.

* ``kv``: the effective policy and its revision, schedule state (last and next
  backup, last attempt), connection state.
* ``outbox``: serialized reports not yet acknowledged by the gateway, replayed
  in order on reconnect; each carries its idempotency key, so a replay after a
  lost acknowledgement is harmless.
* ``jobs``: job history (scheduled and commanded runs).
* ``commands``: command ids already handled, so a redelivered command runs once.

WAL mode, one connection guarded by a lock: used from the daemon's event loop
and from job threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    command_id TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    trigger TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    snapshot_id TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    stats TEXT NOT NULL DEFAULT '{}',
    warnings TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    received REAL NOT NULL,
    finished REAL
);
"""


class State:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        try:
            self.path.chmod(0o600)
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _q(self, sql: str, args=()):
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- key/value -------------------------------------------------------------
    def get(self, key: str, default=None):
        rows = self._q("SELECT value FROM kv WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set(self, key: str, value) -> None:
        self._q(
            "INSERT INTO kv(key, value) VALUES(?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, json.dumps(value)),
        )

    def set_many(self, values: dict) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for k, v in values.items():
                    self.set(k, v)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- policy ------------------------------------------------------------------
    @property
    def policy(self) -> dict | None:
        return self.get("policy")

    @property
    def policy_revision(self) -> str:
        return self.get("policy_revision", "")

    def apply_policy(self, revision: str, policy: dict) -> None:
        self.set_many({"policy": policy, "policy_revision": revision})

    # -- outbox ------------------------------------------------------------------
    def outbox_add(self, key: str, payload: bytes) -> None:
        self._q(
            "INSERT OR IGNORE INTO outbox(key, payload, created) VALUES(?, ?, ?)",
            (key, payload, time.time()),
        )

    def outbox_pending(self, limit: int = 500) -> list[tuple[str, bytes]]:
        return [
            (k, p)
            for k, p in self._q("SELECT key, payload FROM outbox ORDER BY seq LIMIT ?", (limit,))
        ]

    def outbox_remove(self, keys) -> None:
        keys = list(keys)
        if not keys:
            return
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE key=?", [(k,) for k in keys])

    def outbox_size(self) -> int:
        return self._q("SELECT COUNT(*) FROM outbox")[0][0]

    # -- jobs ----------------------------------------------------------------------
    def job_started(self, job_id: str, kind: str, command_id: str = "", trigger: str = "") -> None:
        self._q(
            "INSERT OR REPLACE INTO jobs(id, command_id, kind, trigger, state, started) "
            "VALUES(?, ?, ?, ?, 'running', ?)",
            (job_id, command_id, kind, trigger, time.time()),
        )

    def job_finished(
        self,
        job_id: str,
        state: str,
        snapshot_id: str = "",
        error: str = "",
        stats: dict | None = None,
        warnings: list | None = None,
    ) -> None:
        self._q(
            "UPDATE jobs SET state=?, finished=?, snapshot_id=?, error=?, stats=?, warnings=? "
            "WHERE id=?",
            (
                state,
                time.time(),
                snapshot_id,
                error,
                json.dumps(stats or {}),
                json.dumps(warnings or []),
                job_id,
            ),
        )

    def jobs(self, limit: int = 20) -> list[dict]:
        cols = ["id", "command_id", "kind", "trigger", "state", "started", "finished"]
        cols += ["snapshot_id", "error", "stats"]
        rows = self._q(
            f"SELECT {', '.join(cols)} FROM jobs ORDER BY started DESC LIMIT ?", (limit,)
        )
        out = [dict(zip(cols, r, strict=True)) for r in rows]
        for job in out:
            job["stats"] = json.loads(job["stats"] or "{}")
        return out

    def interrupted_jobs(self) -> list[dict]:
        rows = self._q("SELECT id, command_id, kind FROM jobs WHERE state='running'")
        return [{"id": r[0], "command_id": r[1], "kind": r[2]} for r in rows]

    # -- commands --------------------------------------------------------------------
    def command_seen(self, command_id: str) -> str | None:
        rows = self._q("SELECT state FROM commands WHERE id=?", (command_id,))
        return rows[0][0] if rows else None

    def command_received(self, command_id: str, kind: str) -> bool:
        """Record a command; False when it was already known (a redelivery)."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO commands(id, kind, state, received) VALUES(?, ?, 'running', ?)",
                (command_id, kind, time.time()),
            )
            return cur.rowcount == 1

    def command_finished(self, command_id: str, state: str) -> None:
        self._q(
            "UPDATE commands SET state=?, finished=? WHERE id=?", (state, time.time(), command_id)
        )

    def running_commands(self) -> list[str]:
        return [r[0] for r in self._q("SELECT id FROM commands WHERE state='running'")]

    def recent_commands(self, limit: int = 200) -> list[str]:
        return [
            r[0]
            for r in self._q("SELECT id FROM commands ORDER BY received DESC LIMIT ?", (limit,))
        ]

    def prune(self, keep_days: int = 90) -> None:
        cutoff = time.time() - keep_days * 86400
        self._q("DELETE FROM commands WHERE finished IS NOT NULL AND finished < ?", (cutoff,))
        self._q("DELETE FROM jobs WHERE finished IS NOT NULL AND finished < ?", (cutoff,))
