"""The one interface every point-in-time provider implements.

A provider answers two questions: can it take a snapshot covering these
source paths (``available``), and, inside a ``with provider.open(paths)``
block, where does an original path's content live in the snapshot
(``SnapshotView.translate``). The engine records original paths and reads
through ``translate``; the snapshot is gone when the block exits, whatever
happened inside it, so a backup never holds one longer than it needs.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum

from agent.snapshots.ledger import Ledger
from agent.snapshots.runner import Runner, run

StateDir = str | os.PathLike[str] | None


class OpenFileMode(StrEnum):
    """The policy's open-file setting."""

    REQUIRED = "required"  # no snapshot -> the run fails with the reason
    PREFERRED = "preferred"  # no snapshot -> consistent reads, with a warning
    OFF = "off"  # never snapshot: consistent reads only


class SnapshotError(Exception):
    """Taking, mounting or releasing a snapshot failed; str() is the reason."""


class SnapshotRequiredError(SnapshotError):
    """Mode ``required`` and no snapshot could cover every source."""


@dataclass(frozen=True)
class Availability:
    """Whether a provider can snapshot some paths, and if not, why not.

    The reason is meant for an admin reading the job report, so it names the
    path and the missing piece ("/home is ext4, not btrfs").
    """

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


YES = Availability(True)


def no(reason: str) -> Availability:
    return Availability(False, reason)


@dataclass
class SnapshotView:
    """A live snapshot: maps original paths under ``roots`` to snapshot paths.

    ``roots`` maps an original root (a volume mount point, a subvolume) to the
    directory (or device path) where the same tree is frozen. ``warnings``
    collects things the job report must show (e.g. a PST that could not be
    opened); the chooser copies them into the run's warnings.
    """

    provider: str
    roots: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # provider's snapshot ids, for the report
    #: seconds from the snapshot being ready to its release (set on release)
    held_seconds: float | None = None

    def covers(self, path: str) -> bool:
        return self._root_for(path) is not None

    def translate(self, path: str) -> str:
        root = self._root_for(path)
        if root is None:
            return path
        rest = path[len(root) :].lstrip("/\\")
        target = self.roots[root]
        sep = "\\" if "\\" in target or "\\" in root else "/"
        if not rest:
            # A Windows shadow device is listed as a directory only with the
            # trailing backslash (\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\).
            return target.rstrip("\\") + "\\" if sep == "\\" else target
        if sep == "\\":
            rest = rest.replace("/", "\\")
        return target.rstrip("/\\") + sep + rest

    def _root_for(self, path: str) -> str | None:
        # The longest root wins: a nested subvolume or mount shadows its parent.
        best = None
        for root in self.roots:
            if _is_under(path, root) and (best is None or len(root) > len(best)):
                best = root
        return best


def _is_under(path: str, root: str) -> bool:
    if "\\" in root or (len(root) >= 2 and root[1] == ":"):
        # Windows paths compare case-insensitively.
        p, r = path.lower().replace("/", "\\"), root.lower().rstrip("\\")
        return p == r or p.startswith(r + "\\")
    r = root.rstrip("/")
    return path == r or path.startswith(r + "/") or r == ""


class SnapshotProvider(ABC):
    """One OS mechanism for a point-in-time view (VSS, APFS, btrfs, LVM)."""

    name: str = "snapshot"

    def __init__(self, state_dir: StateDir = None, *, ledger: Ledger | None = None):
        # Every snapshot taken and not yet released is recorded here (ledger.py).
        self.ledger = ledger or Ledger(state_dir)

    @abstractmethod
    def available(self, paths: Iterable[str]) -> Availability:
        """Can one ``open(paths)`` cover all of ``paths``? Cheap, no side effects."""

    @abstractmethod
    def open(self, paths: Iterable[str]) -> AbstractContextManager[SnapshotView]:
        """Take the snapshot(s); release them when the block exits.

        Raises SnapshotError with a reason if the snapshot cannot be taken;
        anything created before the failure is released before raising.
        """

    def cleanup_stale(self) -> list[str]:
        """Remove snapshots this agent created and never released (a crash,
        a power cut). Returns a line per snapshot removed or left in place."""
        return []


class CommandProvider(SnapshotProvider):
    """A provider driving the OS's command-line tools through a ``Runner``."""

    def __init__(
        self, state_dir: StateDir = None, *, runner: Runner = run, ledger: Ledger | None = None
    ):
        super().__init__(state_dir, ledger=ledger)
        self.runner = runner


class MountingProvider(CommandProvider):
    """A command-line provider that mounts its snapshots read-only below
    ``mount_root``: by default ``<name>-snapshots`` in the state directory (in
    the system's temporary directory when there is none)."""

    def __init__(
        self,
        state_dir: StateDir = None,
        *,
        runner: Runner = run,
        ledger: Ledger | None = None,
        mount_root: str | None = None,
    ):
        super().__init__(state_dir, runner=runner, ledger=ledger)
        base = state_dir if state_dir is not None else tempfile.gettempdir()
        self.mount_root = mount_root or os.path.join(base, f"{self.name}-snapshots")


def normalise(paths: Iterable[str]) -> list[str]:
    return [os.path.abspath(p) for p in paths]


def iter_unique(items: Iterable[str]) -> Iterator[str]:
    seen: set[str] = set()
    for item in items:
        if item not in seen:
            seen.add(item)
            yield item
