"""Exceptions the engine raises on purpose. Each carries a message that is fit
to show an admin as one line; the CLI prints ``str(exc)`` and nothing more."""

from __future__ import annotations

from agent.engine.store import ObjectExists, ObjectNotFound, StoreError

__all__ = [
    "AmbiguousSnapshot",
    "BackupCancelled",
    "Cancelled",
    "CheckCancelled",
    "CorruptObject",
    "EngineError",
    "NotARepository",
    "ObjectExists",
    "ObjectNotFound",
    "PruneError",
    "RepositoryExists",
    "RestoreCancelled",
    "SnapshotNotFound",
    "StoreError",
    "UnsafeName",
    "UnsupportedVersion",
    "WrongKey",
]


class EngineError(Exception):
    """Base of the engine's own errors."""


class NotARepository(EngineError):
    """The store holds no Cairn repository (no ``config`` object)."""


class RepositoryExists(EngineError):
    """``init`` on a store that already holds a repository."""


class UnsupportedVersion(EngineError):
    """The repository (or one of its objects) uses a format version this
    engine does not know. Newer agents may read older repositories, never the
    other way round."""


class WrongKey(EngineError):
    """None of the repository's key files opens with the key or passphrase given."""


class CorruptObject(EngineError):
    """An object failed authentication or does not parse: it was damaged or
    tampered with. ``key`` names the object (and ``blob`` the blob inside a
    pack, if any)."""

    def __init__(self, message: str, *, key: str | None = None, blob: bytes | None = None):
        super().__init__(message)
        self.key = key
        self.blob = blob


class UnsafeName(EngineError):
    """A stored tree entry name that cannot be one path component (empty,
    ``.``, ``..``, a separator, NUL): only a modified agent writes one, and
    joined to a restore target it would write outside it. ``name`` holds the
    raw bytes."""

    def __init__(self, message: str, *, name: bytes):
        super().__init__(message)
        self.name = name


class SnapshotNotFound(EngineError):
    pass


class AmbiguousSnapshot(EngineError):
    pass


class Cancelled(EngineError):
    """The caller's cancel event was set."""


class BackupCancelled(Cancelled):
    """A backup was cancelled. Data already uploaded is indexed, so the next
    backup reuses it; no snapshot was written."""


class RestoreCancelled(Cancelled):
    """A restore was cancelled; files already completed stay in place, none
    is left half-written under its real name."""


class CheckCancelled(Cancelled):
    pass


class PruneError(EngineError):
    """Prune refused to run (it never deletes on incomplete information)."""
