"""LVM: a read-only snapshot LV per logical volume holding sources, mounted
read-only under the agent's state directory.

Not exercised for real in this project: the development machine has no
device-mapper, so the orchestration is tested against LVM2's output formats
(tests/agent/open_files/test_lvm_recorded.py); docs/open-files.md says so.

* Classic (thick) LVs need copy-on-write space from the volume group: we ask
  for 10 % of the LV (at least 256 MiB), and refuse, with the reason, when the
  VG has less free. A snapshot that overflows becomes invalid and reads from
  it fail; the release step checks for that and warns.
* Thin LVs snapshot without reserving space (``--setactivationskip n`` so the
  snapshot can be activated and mounted).
* The snapshot is mounted ``ro`` plus ``noload`` (ext3/4: do not replay the
  journal onto a read-only device) or ``nouuid,norecovery`` (XFS refuses a
  second mount of the same UUID and cannot recover read-only).
* ``lvcreate`` itself briefly suspends the LV (the kernel flushes the
  filesystem for the duration of the table swap). We never call fsfreeze:
  writes to a frozen filesystem hang unkillably.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from agent.snapshots.base import (
    YES,
    Availability,
    MountingProvider,
    SnapshotError,
    SnapshotView,
    no,
)
from agent.snapshots.linux_btrfs import mount_of

MIN_COW = 256 * 1024 * 1024
COW_FRACTION = 0.10
MOUNT_OPTIONS = {
    "ext2": "ro",
    "ext3": "ro,noload",
    "ext4": "ro,noload",
    "xfs": "ro,nouuid,norecovery",
}


@dataclass(frozen=True)
class LogicalVolume:
    vg: str
    lv: str
    size: int
    vg_free: int
    attr: str
    mountpoint: str
    fstype: str

    @property
    def thin(self) -> bool:
        return self.attr[:1] == "V"

    @property
    def cow_size(self) -> int:
        return max(MIN_COW, int(self.size * COW_FRACTION) // 512 * 512)


class LvmProvider(MountingProvider):
    name = "lvm"

    def _volume(self, path: str) -> LogicalVolume | str:
        """The LV holding ``path``, or the reason there is none."""
        m = mount_of(path, self.runner)
        if m is None:
            return f"could not tell which filesystem holds {path}"
        if m["fstype"] not in MOUNT_OPTIONS:
            return f"{path} is on {m['fstype'] or 'an unknown filesystem'}, which the LVM provider does not mount"
        res = self.runner(
            [
                "lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
                "-o", "vg_name,lv_name,lv_size,lv_attr,vg_free", m["source"],
            ],
            timeout=60,
        )  # fmt: skip
        if not res.ok:
            if "device-mapper" in res.output or "/dev/mapper/control" in res.output:
                return "the kernel's device-mapper is not available, so LVM cannot snapshot"
            if res.returncode == 127:
                return "the LVM tools (lvm2) are not installed"
            return f"{path} is on {m['source']}, not an LVM logical volume"
        try:
            row = json.loads(res.stdout)["report"][0]["lv"][0]
            lv = LogicalVolume(
                row["vg_name"], row["lv_name"], int(row["lv_size"]), int(row["vg_free"]),
                row["lv_attr"], m["target"], m["fstype"],
            )  # fmt: skip
        except (ValueError, KeyError, IndexError) as exc:
            return f"could not read lvs output for {m['source']}: {exc}"
        if lv.attr[:1] in ("s", "S"):
            return f"{m['source']} is itself an LVM snapshot"
        if not lv.thin and lv.vg_free < lv.cow_size:
            return (
                f"volume group {lv.vg} has {lv.vg_free // 2**20} MiB free; a snapshot of "
                f"{lv.vg}/{lv.lv} needs {lv.cow_size // 2**20} MiB"
            )
        return lv

    def available(self, paths: Iterable[str]) -> Availability:
        paths = list(paths)
        if not paths:
            return no("no source paths")
        for p in paths:
            lv = self._volume(p)
            if isinstance(lv, str):
                return no(lv)
        return YES

    @contextmanager
    def open(self, paths: Iterable[str]) -> Iterator[SnapshotView]:
        volumes: dict[tuple[str, str], LogicalVolume] = {}
        for p in paths:
            lv = self._volume(p)
            if isinstance(lv, str):
                raise SnapshotError(lv)
            volumes.setdefault((lv.vg, lv.lv), lv)
        view = SnapshotView(self.name, {})
        taken: list[tuple[str, str]] = []
        try:
            for lv in volumes.values():
                key, mnt = self._take(lv)
                taken.append((key, mnt))
                view.roots[lv.mountpoint] = mnt
                view.ids.append(key)
            if len(volumes) > 1:
                view.warnings.append(
                    f"lvm: {len(volumes)} logical volumes snapshotted one after another"
                )
            yield view
        finally:
            for key, mnt in reversed(taken):
                view.warnings.extend(self._release(key, mnt))

    def cleanup_stale(self) -> list[str]:
        lines = []
        for entry in self.ledger.entries(self.name):
            problems = self._release(entry["key"], entry.get("mountpoint", ""))
            lines.extend(problems or [f"lvm: removed stale snapshot {entry['key']}"])
        return lines

    def _take(self, lv: LogicalVolume) -> tuple[str, str]:
        name = f"cairn-{lv.lv}-{uuid.uuid4().hex[:8]}"
        key = f"{lv.vg}/{name}"
        mnt = os.path.join(self.mount_root, name)
        self.ledger.add(self.name, key, mountpoint=mnt, origin=f"{lv.vg}/{lv.lv}")
        argv = ["lvcreate", "--snapshot", "--permission", "r", "--name", name]
        if lv.thin:
            argv += ["--setactivationskip", "n"]
        else:
            argv += ["--size", f"{lv.cow_size}b"]
        res = self.runner([*argv, f"{lv.vg}/{lv.lv}"], timeout=120)
        if not res.ok:
            self.ledger.remove(self.name, key)
            raise SnapshotError(f"lvm snapshot of {lv.vg}/{lv.lv}: {res.describe()}")
        os.makedirs(mnt, exist_ok=True)
        res = self.runner(
            ["mount", "-t", lv.fstype, "-o", MOUNT_OPTIONS[lv.fstype], f"/dev/{key}", mnt]
        )
        if not res.ok:
            problems = self._release(key, mnt)
            raise SnapshotError(
                f"lvm: mounting the snapshot of {lv.vg}/{lv.lv}: {res.describe()}"
                + (f" ({'; '.join(problems)})" if problems else "")
            )
        return key, mnt

    def _release(self, key: str, mnt: str) -> list[str]:
        problems = []
        if mnt:
            res = self.runner(["umount", mnt])
            if (
                not res.ok
                and "not mounted" not in res.output
                and "no mount point" not in res.output
            ):
                return [f"lvm: could not unmount {mnt}: {res.describe()}"]
        attr = self.runner(["lvs", "--noheadings", "-o", "lv_attr", key], timeout=60)
        if not attr.ok:
            if "not found" in attr.output or "Failed to find" in attr.output:
                self._forget(key, mnt)
                return []
        elif attr.stdout.strip()[4:5] == "I":
            problems.append(
                f"lvm: snapshot {key} overflowed its copy-on-write space during the backup; "
                "files read after that point failed (give the volume group more free space)"
            )
        res = self.runner(["lvremove", "--yes", key], timeout=120)
        if not res.ok:
            problems.append(f"lvm: could not remove snapshot {key}: {res.describe()}")
            return problems  # stays in the ledger for the next start
        self._forget(key, mnt)
        return problems

    def _forget(self, key: str, mnt: str) -> None:
        self.ledger.remove(self.name, key)
        if mnt:
            try:
                os.rmdir(mnt)
            except OSError:
                pass
