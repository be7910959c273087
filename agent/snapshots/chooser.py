"""Pick the snapshot providers for a run and honour the policy's open-file mode.

Each source path goes to the first provider that can cover it (so /home on
btrfs is snapshotted while /srv on ext4 is read live). Then, by mode:

* ``off``: no snapshot; every file is read live with the engine's
  consistent-read checks.
* ``preferred``: paths no provider covers, or whose snapshot fails, are read
  live; the run carries a warning naming them and why.
* ``required``: any such path fails the run before a byte is read, with the
  reason (SnapshotRequiredError).

Usage (the daemon)::

    with point_in_time(sources, policy.open_files, state_dir=state) as pit:
        result = backup(sources, translate=pit.translate, ...)
    report_warnings = pit.warnings + result.warnings  # after the block: release
                                                       # problems are appended on exit
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from agent.snapshots.base import (
    MountingProvider,
    OpenFileMode,
    SnapshotError,
    SnapshotProvider,
    SnapshotRequiredError,
    SnapshotView,
)
from agent.snapshots.linux_btrfs import SNAPSHOT_DIR


@dataclass
class PointInTime:
    """What a run reads through: snapshot views plus the paths read live."""

    mode: OpenFileMode
    views: list[SnapshotView] = field(default_factory=list)
    live: dict[str, str] = field(default_factory=dict)  # source path -> why it is read live
    warnings: list[str] = field(default_factory=list)

    def covers(self, path: str) -> bool:
        """Whether ``path`` is read from a (read-only) snapshot."""
        return any(view.covers(path) for view in self.views)

    def translate(self, path: str) -> str:
        for view in self.views:
            if view.covers(path):
                return view.translate(path)
        return path

    @property
    def providers(self) -> list[str]:
        return [v.provider for v in self.views]

    def report(self, sources: Iterable[str]) -> dict:
        """Per source: which snapshot it was read from and how long that was
        held, or why it was read live. For the job record (the console shows
        it on the job and device pages and in the API): an auditor asks
        whether a copy was point-in-time."""
        entries = []
        for path in sources:
            view = next((v for v in self.views if v.covers(path)), None)
            if view is None:
                why = self.live.get(path) or (
                    "open-file mode is off" if self.mode is OpenFileMode.OFF else "no snapshot"
                )
                entries.append({"path": path, "provider": "", "live": why})
                continue
            entries.append(
                {
                    "path": path,
                    "provider": view.provider,
                    "snapshot_ids": list(view.ids),
                    "held_seconds": view.held_seconds,
                }
            )
        return {"mode": str(self.mode), "summary": self.describe(), "sources": entries}

    def describe(self) -> str:
        """One line for ``agent status`` and the job report."""
        if self.mode is OpenFileMode.OFF:
            return "open-file snapshots off: consistent reads"
        if not self.views:
            return "no snapshot: consistent reads"
        parts = [f"{v.provider} snapshot of {', '.join(v.roots)}" for v in self.views]
        if self.live:
            parts.append(f"live (consistent reads): {', '.join(self.live)}")
        return "; ".join(parts)


def default_providers(
    state_dir: str | os.PathLike[str] | None, platform: str = sys.platform
) -> list[SnapshotProvider]:
    """The providers this OS can offer, most preferred first."""
    if platform == "win32":
        from agent.snapshots.windows_vss import VssProvider

        return [VssProvider(state_dir)]
    if platform == "darwin":
        from agent.snapshots.macos_apfs import ApfsProvider

        return [ApfsProvider(state_dir)]
    if platform.startswith("linux"):
        from agent.snapshots.linux_btrfs import BtrfsProvider
        from agent.snapshots.linux_lvm import LvmProvider

        return [BtrfsProvider(state_dir), LvmProvider(state_dir)]
    return []


def own_folders_excludes(
    state_dir: str | os.PathLike[str] | None,
    providers: Sequence[SnapshotProvider] | None = None,
) -> list[str]:
    """Exclude patterns for the agent's own snapshot folders, added to every
    backup whatever the policy says: a policy's excludes replace the
    defaults, and a snapshot stored in the backup would be restored into the
    user's folders (and doubles the size of every backup of a subvolume)."""
    patterns = [SNAPSHOT_DIR]  # btrfs: inside each snapshotted subvolume
    for provider in providers if providers is not None else default_providers(state_dir):
        if isinstance(provider, MountingProvider):  # LVM, APFS: mounted in the state dir
            patterns.append(os.path.abspath(provider.mount_root))
    return patterns


def cleanup_stale_snapshots(
    state_dir: str | os.PathLike[str] | None,
    providers: Sequence[SnapshotProvider] | None = None,
) -> list[str]:
    """Call once when the agent starts: removes snapshots a crashed run left."""
    lines: list[str] = []
    for provider in providers if providers is not None else default_providers(state_dir):
        try:
            lines.extend(provider.cleanup_stale())
        except Exception as exc:  # a broken provider must not stop the agent starting
            lines.append(f"{provider.name}: stale snapshot cleanup failed: {exc}")
    return lines


@contextmanager
def point_in_time(
    paths: Iterable[str],
    mode: OpenFileMode | str,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    providers: Sequence[SnapshotProvider] | None = None,
) -> Iterator[PointInTime]:
    mode = OpenFileMode(mode)
    paths = list(dict.fromkeys(paths))
    pit = PointInTime(mode)
    if mode is OpenFileMode.OFF:
        yield pit
        return
    if providers is None:
        providers = default_providers(state_dir)

    # Which provider takes which path; why the others could not.
    reasons: dict[str, list[str]] = {p: [] for p in paths}
    candidates: dict[str, list[SnapshotProvider]] = {p: [] for p in paths}
    for path in paths:
        for provider in providers:
            verdict = provider.available([path])
            if verdict:
                candidates[path].append(provider)
            else:
                reasons[path].append(f"{provider.name}: {verdict.reason}")
        if not providers:
            reasons[path].append(f"no snapshot mechanism is supported on {sys.platform}")
    uncovered = [p for p in paths if not candidates[p]]
    if uncovered and mode is OpenFileMode.REQUIRED:
        # Decided before any snapshot is taken: one the run would throw away
        # still costs the user a freeze (VSS writers) and copy-on-write space.
        raise _required_error(uncovered, reasons)

    with ExitStack() as stack:
        pending = [p for p in paths if candidates[p]]
        while pending:
            provider = candidates[pending[0]][0]
            group = [p for p in pending if candidates[p] and candidates[p][0] is provider]
            # Registered before the view so that it runs after its release
            # (the stack unwinds newest first): the hold time includes it.
            held: dict = {}
            stack.callback(_stop_clock, held)
            try:
                view = stack.enter_context(provider.open(group))
                held.update(view=view, since=time.monotonic())
            except SnapshotError as exc:
                for p in group:
                    candidates[p].pop(0)
                    reasons[p].append(f"{provider.name}: {exc}")
            else:
                pit.views.append(view)
                for p in group:
                    candidates[p] = []
            pending = [p for p in pending if candidates[p]]

        live = [p for p in paths if not any(v.covers(p) for v in pit.views)]
        for p in live:
            pit.live[p] = "; ".join(reasons[p]) or "no snapshot provider"
        if live and mode is OpenFileMode.REQUIRED:
            raise _required_error(live, reasons)
        for p in live:
            pit.warnings.append(
                f"no snapshot for {p}: {pit.live[p]}; files read live with consistent-read checks"
            )
        for view in pit.views:
            pit.warnings.extend(view.warnings)
        try:
            yield pit
        finally:
            before = [len(v.warnings) for v in pit.views]
            stack.close()  # releases every snapshot, newest first
            for view, n in zip(pit.views, before, strict=True):
                pit.warnings.extend(view.warnings[n:])


def _required_error(paths: list[str], reasons: dict[str, list[str]]) -> SnapshotRequiredError:
    detail = "; ".join(f"{p} ({'; '.join(reasons[p]) or 'no snapshot provider'})" for p in paths)
    return SnapshotRequiredError(
        f"open-file mode is 'required' but no snapshot could be taken for {detail}"
    )


def _stop_clock(held: dict) -> None:
    if "view" in held:
        held["view"].held_seconds = round(time.monotonic() - held["since"], 3)
