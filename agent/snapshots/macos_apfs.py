"""macOS: an APFS local snapshot, mounted read-only for the run.

    tmutil localsnapshot                      -> "Created local snapshot with date: 2026-11-28-094501"
    tmutil listlocalsnapshots <volume>        -> com.apple.TimeMachine.2026-11-28-094501.local
    mount_apfs -o rdonly,nobrowse -s <name> <volume> <mountpoint>
    ... backup reads under <mountpoint> ...
    umount <mountpoint>; tmutil deletelocalsnapshots 2026-11-28-094501

``tmutil localsnapshot`` snapshots the local APFS volumes at one instant
(unverified here whether it needs Time Machine to have been configured; if no
snapshot of the volume appears, open() fails with that reason). User data lives on the Data
volume (``/System/Volumes/Data``) and appears at ``/Users`` etc. through
firmlinks, so a source path is located with ``df`` (which reports the real
volume) and translated to the same relative path inside the mounted snapshot.

Needs root (the agent's launchd daemon) and Full Disk Access: without it
macOS answers "Operation not permitted", which we turn into a message that
says what to grant. Full Disk Access attaches to a signed app bundle, not to
a bare Python interpreter: the agent must ship as one and be granted through
System Settings or an MDM PPPC profile (SystemPolicyAllFiles).

Tested with recorded outputs of the real tools
(tests/agent/open_files/test_apfs_recorded.py); never run on a Mac in this
project - see docs/open-files.md.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from agent.snapshots.base import (
    YES,
    Availability,
    MountingProvider,
    SnapshotError,
    SnapshotView,
    StateDir,
    no,
    normalise,
)
from agent.snapshots.runner import Result

DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2}-\d{6})\b")
NOT_PERMITTED = "Operation not permitted"

FULL_DISK_ACCESS = (
    "macOS refused with 'Operation not permitted': the Cairn agent lacks Full Disk Access. "
    "Grant it in System Settings > Privacy & Security > Full Disk Access (to the Cairn agent "
    "app, not to a Python interpreter) or deploy a PPPC profile (SystemPolicyAllFiles) via MDM"
)


def full_disk_access_hint(text: str) -> str | None:
    """The Full Disk Access explanation, if ``text`` is macOS's tell-tale refusal."""
    return FULL_DISK_ACCESS if NOT_PERMITTED in text else None


class ApfsProvider(MountingProvider):
    name = "apfs"

    def __init__(
        self,
        state_dir: StateDir = None,
        *,
        platform: str = sys.platform,
        is_root: Callable[[], bool] = lambda: os.geteuid() == 0,
        **options: Any,  # runner, ledger, mount_root: see MountingProvider
    ):
        super().__init__(state_dir, **options)
        self.platform = platform
        self.is_root = is_root

    # -- where things are -------------------------------------------------------
    def _volume(self, path: str) -> str:
        """The mount point of the volume really holding ``path`` (firmlinks resolved)."""
        res = self.runner(["df", "-P", path], timeout=30)
        lines = res.stdout.strip().splitlines()
        if not res.ok or len(lines) < 2:
            raise SnapshotError(f"cannot tell which volume holds {path}: {res.describe()}")
        # "Filesystem 512-blocks Used Available Capacity Mounted on": the mount
        # point is everything after the fifth column (it may contain spaces).
        parts = lines[-1].split(None, 5)
        if len(parts) < 6:
            raise SnapshotError(f"cannot read df output for {path}: {lines[-1]!r}")
        return parts[5]

    def _fstype(self, volume: str) -> str:
        res = self.runner(["mount"], timeout=30)
        for line in res.stdout.splitlines():
            m = re.match(r"^(\S+) on (.+) \(([^,)]+)", line)
            if m and m.group(2) == volume:
                return m.group(3)
        return ""

    @staticmethod
    def _relative(path: str, volume: str) -> str:
        if volume != "/" and (path == volume or path.startswith(volume.rstrip("/") + "/")):
            return path[len(volume.rstrip("/")) :].lstrip("/")
        # Reached through a firmlink (/Users -> /System/Volumes/Data/Users):
        # the same path, relative to the volume's root.
        return path.lstrip("/")

    def available(self, paths: Iterable[str]) -> Availability:
        paths = list(paths)
        if not paths:
            return no("no source paths")
        if self.platform != "darwin":
            return no("APFS snapshots exist only on macOS")
        if not self.is_root():
            return no("APFS snapshots need the agent to run as root (its launchd daemon does)")
        for p in paths:
            try:
                vol = self._volume(p)
            except SnapshotError as exc:
                return no(str(exc))
            fs = self._fstype(vol)
            if fs != "apfs":
                return no(f"{p} is on {vol} ({fs or 'unknown filesystem'}), not APFS")
        return YES

    # -- lifecycle ----------------------------------------------------------------
    def _fail(self, what: str, res: Result) -> SnapshotError:
        return SnapshotError(full_disk_access_hint(res.output) or f"apfs: {what}: {res.describe()}")

    @contextmanager
    def open(self, paths: Iterable[str]) -> Iterator[SnapshotView]:
        paths = normalise(paths)
        located = {p: self._volume(p) for p in paths}
        res = self.runner(["tmutil", "localsnapshot"], timeout=300)
        m = DATE.search(res.stdout)
        if not res.ok or not m:
            raise self._fail("tmutil localsnapshot", res)
        date = m.group(1)
        mounts: dict[str, str] = {}  # volume -> mountpoint
        self.ledger.add(self.name, date, mountpoints=[])
        view = SnapshotView(self.name, {}, ids=[date])
        try:
            for volume in dict.fromkeys(located.values()):
                listed = self.runner(["tmutil", "listlocalsnapshots", volume], timeout=60)
                names = [n.strip() for n in listed.stdout.splitlines() if date in n]
                if not listed.ok or not names:
                    raise self._fail(f"finding snapshot {date} of {volume}", listed)
                mnt = os.path.join(self.mount_root, f"{date}-{len(mounts)}")
                os.makedirs(mnt, exist_ok=True)
                mounts[volume] = mnt
                self.ledger.update(self.name, date, mountpoints=list(mounts.values()))
                mounted = self.runner(
                    ["mount_apfs", "-o", "rdonly,nobrowse", "-s", names[0], volume, mnt],
                    timeout=120,
                )
                if not mounted.ok:
                    raise self._fail(f"mounting snapshot {names[0]} of {volume}", mounted)
            for p, volume in located.items():
                rel = self._relative(p, volume)
                view.roots[p] = os.path.join(mounts[volume], rel) if rel else mounts[volume]
            yield view
        finally:
            view.warnings.extend(self._release(date, list(mounts.values())))

    def _release(self, date: str, mountpoints: list[str]) -> list[str]:
        problems = []
        for mnt in mountpoints:
            res = self.runner(["umount", mnt], timeout=120)
            if not res.ok and "not currently mounted" not in res.output:
                forced = self.runner(["umount", "-f", mnt], timeout=120)
                if not forced.ok and "not currently mounted" not in forced.output:
                    problems.append(f"apfs: could not unmount {mnt}: {forced.describe()}")
                    continue
            try:
                os.rmdir(mnt)
            except OSError:
                pass
        res = self.runner(["tmutil", "deletelocalsnapshots", date], timeout=300)
        if not res.ok and "No such" not in res.output:
            problems.append(f"apfs: could not delete local snapshot {date}: {res.describe()}")
        if not problems:
            self.ledger.remove(self.name, date)
        return problems

    def cleanup_stale(self) -> list[str]:
        lines = []
        for entry in self.ledger.entries(self.name):
            problems = self._release(entry["key"], entry.get("mountpoints", []))
            lines.extend(problems or [f"apfs: removed stale local snapshot {entry['key']}"])
        return lines
