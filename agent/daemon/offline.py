"""Backing up to S3/MinIO while no gateway can be reached (docs/security.md,
"Offline backups").

An agent holds no storage credential: every object it writes needs a URL a
gateway signed (``grantstore.GrantStore``). A laptop off the VPN may still
reach storage, and must still back up on schedule. Two pieces make that
possible without giving the PC any right it does not already have:

* :class:`SpoolLease` — write-once upload *slots* leased ahead while online
  (``LeaseSpool``), valid for days. An offline write puts the object's bytes
  in ``spool/<id>/object`` and then a small JSON document naming its real key
  in ``spool/<id>/target``; both URLs carry ``If-None-Match: *``. The console
  later moves them into place with server-side copies, never over an
  existing object (console/storage/spool.py). The PC still cannot delete,
  overwrite, or write outside its prefix.
* :class:`RepositoryView` — what the engine reads to open the repository and
  back up, as last seen online: the listings of ``keys/``, ``index/``,
  ``snapshots/`` and ``prune/``, and the bytes of ``config``, ``keys/*`` and
  ``prune/*`` (index objects, snapshots and tree packs are in the engine's
  own cache). Keys the agent spooled are added to the listings until the real
  listing shows them promoted.

Why deduplicating against a stale view is safe: a prune deletes data only
one grace period after marking it unused, and the console holds back the
sweep of markers written after the lease was issued until the lease expires.
The agent refreshes the view right after each lease (``arm``), so any marker
it has not seen is one the console will not sweep while it can still upload.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.daemon.home import write_private
from agent.engine.store import StoreError

#: listings the engine needs offline (open, load the index, pick a parent)
LISTED = ("keys/", "index/", "snapshots/", "prune/")
#: a spooled key not promoted after this long is forgotten (the console
#: refused it, or the device was revoked meanwhile)
PENDING_AT_MOST = 14 * 24 * 3600


def _mirrored_object(key: str) -> bool:
    """Small objects the engine reads with a plain GET (the rest is in the
    engine cache)."""
    return key == "config" or key.startswith(("keys/", "prune/"))


class OfflineUnavailable(StoreError):
    """What an offline job needs is not in the local view or lease."""


@dataclass
class Slot:
    id: str
    object_url: str
    object_headers: dict
    target_url: str
    target_headers: dict


@dataclass
class SpoolLease:
    issued_at: float
    expires_at: float
    slots: list[Slot]
    used: int = 0
    #: the repository view was refreshed after this lease was issued
    armed: bool = False

    @classmethod
    def from_pb(cls, lease) -> SpoolLease:
        return cls(
            issued_at=lease.issued_at.ToSeconds(),
            expires_at=lease.expires_at.ToSeconds(),
            slots=[
                Slot(
                    s.id,
                    s.object.url,
                    dict(s.object.headers),
                    s.target.url,
                    dict(s.target.headers),
                )
                for s in lease.slots
            ],
        )

    @property
    def remaining(self) -> int:
        return len(self.slots) - self.used


class OfflineSupport:
    """The lease and the view of one agent home (``<home>/offline/``).

    Thread-safe: the engine uploads packs from several threads."""

    #: renew a lease older than this, or with fewer than half its slots left
    RENEW_AFTER = 24 * 3600

    def __init__(self, directory: Path | str):
        self.dir = Path(directory)
        self._lock = threading.RLock()
        self.lease = self._load_lease()
        self._view = self._load_view()

    # -- persistence -------------------------------------------------------------------
    @property
    def _lease_file(self) -> Path:
        return self.dir / "lease.json"

    @property
    def _view_file(self) -> Path:
        return self.dir / "view.json"

    def _load_lease(self) -> SpoolLease | None:
        try:
            doc = json.loads(self._lease_file.read_bytes())
            doc["slots"] = [Slot(**s) for s in doc["slots"]]
            return SpoolLease(**doc)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def _save_lease(self) -> None:
        # The URLs are bearer grants: readable by the agent's user only.
        write_private(self._lease_file, json.dumps(asdict(self.lease)).encode())

    def _load_view(self) -> dict:
        try:
            view = json.loads(self._view_file.read_bytes())
            if isinstance(view, dict) and isinstance(view.get("listings"), dict):
                view.setdefault("pending", {})
                return view
        except (OSError, ValueError):
            pass
        return {"refreshed_at": 0.0, "listings": {}, "pending": {}}

    def _save_view(self) -> None:
        write_private(self._view_file, json.dumps(self._view).encode())

    def _object_path(self, key: str) -> Path:
        return self.dir / "objects" / key.replace("/", "~")

    # -- the lease ----------------------------------------------------------------------
    def renewal_due(self, now: float | None = None) -> bool:
        now = now or time.time()
        lease = self.lease
        return (
            lease is None
            or not lease.armed
            or now - lease.issued_at > self.RENEW_AFTER
            or lease.remaining < len(lease.slots) // 2
            or lease.expires_at - now < 2 * self.RENEW_AFTER
        )

    def replace_lease(self, lease: SpoolLease) -> None:
        """A new lease replaces the old one at once, unarmed: until the view
        is refreshed (``arm``) nothing is spooled (see the module docstring)."""
        with self._lock:
            self.lease = lease
            self._save_lease()

    def arm(self) -> None:
        with self._lock:
            if self.lease is not None:
                self.lease.armed = True
                self._save_lease()
            self._view["refreshed_at"] = time.time()
            self._save_view()

    def take_slot(self) -> Slot:
        """The next unused slot, marked used before anything is written (a
        slot is never written twice, even after a crash)."""
        with self._lock:
            lease, now = self.lease, time.time()
            if lease is None or not lease.armed:
                raise OfflineUnavailable(
                    "the gateway is unreachable and no offline upload lease is held yet "
                    "(one is taken after the first backup with the gateway reachable)"
                )
            if now >= lease.expires_at - 60:
                raise OfflineUnavailable(
                    "the gateway is unreachable and the offline upload lease expired at "
                    + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(lease.expires_at))
                )
            if lease.used >= len(lease.slots):
                raise OfflineUnavailable(
                    f"the gateway is unreachable and all {len(lease.slots)} offline upload "
                    "slots are used; the rest is uploaded when it is reachable again"
                )
            slot = lease.slots[lease.used]
            lease.used += 1
            self._save_lease()
            return slot

    def spooled(self, key: str) -> None:
        """``key`` now waits in the spool for the console to promote it."""
        if key.startswith(LISTED):
            with self._lock:
                self._view["pending"][key] = time.time()
                self._save_view()

    # -- the view ---------------------------------------------------------------------
    def record_listing(self, prefix: str, keys: list[str]) -> list[str]:
        """Remember an online listing; returns it with the keys still waiting
        in the spool added (they are not listed until promoted)."""
        if prefix not in LISTED:
            return keys
        with self._lock:
            listed = set(keys)
            pending = self._view["pending"]
            stale = time.time() - PENDING_AT_MOST
            for key in [k for k in pending if k in listed or pending[k] < stale]:
                del pending[key]  # promoted (or given up)
            self._view["listings"][prefix] = sorted(listed)
            self._save_view()
            return sorted(listed | {k for k in pending if k.startswith(prefix)})

    def listing(self, prefix: str) -> list[str]:
        with self._lock:
            listed = self._view["listings"].get(prefix)
            if listed is None:
                raise OfflineUnavailable(
                    f"the gateway is unreachable and {prefix!r} was never listed online"
                )
            pending = {k for k in self._view["pending"] if k.startswith(prefix)}
            return sorted(set(listed) | pending)

    def knows(self, key: str) -> bool:
        prefix = key.split("/", 1)[0] + "/" if "/" in key else key
        with self._lock:
            if key in self._view["pending"]:
                return True
            if key in self._view["listings"].get(prefix, ()):
                return True
        return self._object_path(key).exists()

    def record_object(self, key: str, data: bytes) -> None:
        if _mirrored_object(key):
            write_private(self._object_path(key), bytes(data))

    def object(self, key: str) -> bytes:
        if _mirrored_object(key):
            try:
                return self._object_path(key).read_bytes()
            except OSError:
                pass
        raise OfflineUnavailable(
            f"the gateway is unreachable and {key} is not in the local copy of the repository"
        )

    @property
    def refreshed_at(self) -> float:
        return float(self._view.get("refreshed_at") or 0.0)

    def describe(self) -> dict:
        lease = self.lease
        return {
            "lease_expires_at": lease.expires_at if lease else None,
            "slots_left": lease.remaining if lease and lease.armed else 0,
            "view_refreshed_at": self.refreshed_at or None,
            "waiting_for_promotion": len(self._view["pending"]),
        }
