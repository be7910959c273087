"""The object store interface the repository is written against.

A repository is a flat namespace of immutable objects named by ``/``-separated
keys (``config``, ``keys/<id>``, ``data/<xx>/<id>``, ``index/<id>``,
``snapshots/<id>``). Everything the engine needs from storage is here, so a
local directory, S3 or MinIO and test doubles are interchangeable.

Semantics every implementation must honour:

* ``put`` is **create-only**. The engine never rewrites an object: every key is
  either random or derived from the object's content, so writing a key twice
  means writing the same bytes twice. Implementations that can detect an
  existing key atomically raise :class:`ObjectExists` (LocalStore does); an
  implementation that cannot (plain S3 PUT) may overwrite, which is harmless
  for the reason above. Callers treat ``ObjectExists`` as "already stored".
  Production buckets grant agents no overwrite/delete rights, so an overwrite
  attempt there surfaces as a :class:`StoreError`.
* An object is either absent or complete: a reader never sees a partial put.
* ``delete`` exists for server-side maintenance (prune, garbage collection)
  only; the backup path never calls it.
* Missing objects raise :class:`ObjectNotFound`; every other storage failure
  (I/O errors, permission, network after retries) raises :class:`StoreError`
  with a message that names the key.
* Implementations are safe to call from several threads at once.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterator

__all__ = [
    "ObjectExists",
    "ObjectNotFound",
    "ObjectStore",
    "StoreError",
    "validate_key",
]


class StoreError(Exception):
    """A storage operation failed (I/O, permission, network, bad key)."""


class ObjectNotFound(StoreError):
    """The object does not exist."""

    def __init__(self, key: str, where: str = ""):
        self.key = key
        super().__init__(f"object not found: {key}" + (f" in {where}" if where else ""))


class ObjectExists(StoreError):
    """``put`` of a key that already exists (create-only stores)."""

    def __init__(self, key: str, where: str = ""):
        self.key = key
        super().__init__(f"object already exists: {key}" + (f" in {where}" if where else ""))


def validate_key(key: str) -> str:
    """Reject keys that could escape the store's root or mean two things."""
    if (
        not key
        or key.startswith("/")
        or key.endswith("/")
        or "\\" in key
        or "\x00" in key
        or any(part in ("", ".", "..") for part in key.split("/"))
    ):
        raise StoreError(f"invalid object key: {key!r}")
    return key


class ObjectStore(abc.ABC):
    """A flat namespace of immutable objects (see module docstring)."""

    #: a short human description (path or URL) for messages
    location: str = ""
    #: The largest ranged read worth one request. Remote stores pay per
    #: request, so they read big ranges; a local disk does not, and smaller
    #: ranges keep a restore's memory down (measured in docs/performance.md).
    max_read_range: int = 16 * 1024 * 1024
    #: Objects written to the offline spool instead of their place (only a
    #: store that spools, agent/daemon/grantstore.py, counts them; wrappers
    #: pass their inner store's count through). The daemon reports it so the
    #: console promotes what waits in the spool.
    spooled_objects: int = 0

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Create object ``key`` with ``data``; create-only (see module docs)."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object. Raises ObjectNotFound."""

    @abc.abstractmethod
    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``. Raises ObjectNotFound; a range past
        the end returns the bytes that exist (callers check the length)."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether the object exists."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys that start with ``prefix`` (a plain string prefix, typically
        ending in ``/``), in no particular order."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (maintenance only). Missing objects are not an error."""

    def size(self, key: str) -> int:
        """Size of an object in bytes. Stores should override this cheaply."""
        return len(self.get(key))

    def locked_until(self, key: str) -> dt.datetime | None:
        """The end of the object's S3 Object Lock retention (aware UTC), or
        None when it has none (a store without Object Lock). Prune leaves an
        object whose retention is still running (agent/engine/prune.py)."""
        return None

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location}>"
