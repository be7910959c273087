"""The backup engine: repository format, chunking, crypto, packs, index,
snapshots, backup, restore and check. See docs/format.md.

The API the daemon and the CLI use::

    from agent.engine import BackupOptions, Repository, open_store, run_backup, run_restore, run_check

    store = open_store("s3://bucket/org/device")          # or a local path
    repo = Repository.open(store, key=org_key)            # or passphrase=...
    options = BackupOptions(excludes=(...), tags=(...), progress=cb,
                            translate=view_path, cancel=event)
    result = run_backup(repo, ["/home/ana"], options)
    run_restore(repo, "latest", "/", include=["/home/ana/Documents/q3.xlsx"],
                overwrite="if-newer")
    report = run_check(repo, read_data=True)
"""

from agent.engine.backup import (
    BackupOptions,
    BackupProgress,
    BackupResult,
    BackupStats,
    BackupWarning,
    run_backup,
)
from agent.engine.check import CheckProblem, CheckProgress, CheckReport, run_check
from agent.engine.errors import (
    AmbiguousSnapshot,
    BackupCancelled,
    Cancelled,
    CheckCancelled,
    CorruptObject,
    EngineError,
    NotARepository,
    RepositoryExists,
    RestoreCancelled,
    SnapshotNotFound,
    UnsupportedVersion,
    WrongKey,
)
from agent.engine.repository import Repository
from agent.engine.restore import (
    RestoreIssue,
    RestoreOptions,
    RestoreProgress,
    RestoreResult,
    run_restore,
)
from agent.engine.snapshot import Snapshot
from agent.engine.store import (
    LocalStore,
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    StoreError,
    open_store,
)

__all__ = [
    "AmbiguousSnapshot",
    "BackupCancelled",
    "BackupOptions",
    "BackupProgress",
    "BackupResult",
    "BackupStats",
    "BackupWarning",
    "Cancelled",
    "CheckCancelled",
    "CheckProblem",
    "CheckProgress",
    "CheckReport",
    "CorruptObject",
    "EngineError",
    "LocalStore",
    "NotARepository",
    "ObjectExists",
    "ObjectNotFound",
    "ObjectStore",
    "Repository",
    "RepositoryExists",
    "RestoreCancelled",
    "RestoreIssue",
    "RestoreOptions",
    "RestoreProgress",
    "RestoreResult",
    "Snapshot",
    "SnapshotNotFound",
    "StoreError",
    "UnsupportedVersion",
    "WrongKey",
    "open_store",
    "run_backup",
    "run_check",
    "run_restore",
]
