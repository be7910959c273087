"""btrfs: a read-only subvolume snapshot per subvolume holding sources.

``btrfs subvolume snapshot -r`` is atomic and instant (copy-on-write), needs
no free-space reservation and never blocks writers: the user's applications
keep writing to the live subvolume while the backup reads the frozen one. It
is the only Linux provider exercised for real in this project's tests
(a loop-backed btrfs image, tests/agent/open_files/test_btrfs_real.py).

Where snapshots live: ``<subvolume root>/.cairn-snapshots/<id>``. A snapshot
must be on the same filesystem, and inside the snapshotted subvolume is the
one place we know we may write. A snapshot does not contain nested
subvolumes (they show as empty directories), so when a source holds nested
subvolumes each gets its own snapshot, bind-mounted (read-only snapshot, so
read-only mount) onto its empty placeholder in the parent's snapshot: the
engine walks the parent's snapshot and sees the whole tree. The set is then
not one atomic instant across subvolumes (btrfs has no multi-subvolume
snapshot), which the view reports as a warning. ``.cairn-snapshots`` is in
the default excludes.

Never fsfreeze: writes to a frozen filesystem hang unkillably, and btrfs
snapshots do not need it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from agent.snapshots.base import (
    YES,
    Availability,
    CommandProvider,
    SnapshotError,
    SnapshotView,
    no,
    normalise,
)
from agent.snapshots.runner import Runner, run

SNAPSHOT_DIR = ".cairn-snapshots"
BTRFS_FIRST_FREE_OBJECTID = 256  # the inode number of every subvolume's root


def mount_of(path: str, runner: Runner = run) -> dict[str, str] | None:
    """findmnt's view of the filesystem holding ``path`` (target, source, fstype)."""
    res = runner(["findmnt", "-n", "-J", "-o", "TARGET,SOURCE,FSTYPE", "-T", path], timeout=30)
    if not res.ok:
        return None
    try:
        fs = json.loads(res.stdout)["filesystems"][0]
    except (ValueError, KeyError, IndexError):
        return None
    return {
        "target": fs.get("target", ""),
        "source": fs.get("source", ""),
        "fstype": fs.get("fstype", ""),
    }


def subvolume_root(path: str) -> str:
    """The root of the btrfs subvolume holding ``path``.

    Every subvolume has its own st_dev, so the root is the highest ancestor
    still on the same st_dev; its inode number is always 256.
    """
    cur = os.path.realpath(path)
    if not os.path.isdir(cur):
        cur = os.path.dirname(cur)
    dev = os.stat(cur).st_dev
    while True:
        parent = os.path.dirname(cur)
        if parent == cur or os.stat(parent).st_dev != dev:
            break
        cur = parent
    if os.stat(cur).st_ino != BTRFS_FIRST_FREE_OBJECTID:
        raise SnapshotError(f"could not find the btrfs subvolume holding {path}")
    return cur


class BtrfsProvider(CommandProvider):
    name = "btrfs"

    # -- availability -----------------------------------------------------------
    def available(self, paths: Iterable[str]) -> Availability:
        paths = normalise(paths)
        if not paths:
            return no("no source paths")
        if shutil.which("btrfs") is None and self.runner is run:
            return no("the btrfs command is not installed (btrfs-progs)")
        for p in paths:
            if not os.path.exists(p):
                return no(f"{p} does not exist")
            m = mount_of(p, self.runner)
            if m is None:
                return no(f"could not tell which filesystem holds {p}")
            if m["fstype"] != "btrfs":
                return no(
                    f"{p} is on {m['fstype'] or 'an unknown filesystem'} ({m['target']}), not btrfs"
                )
        return YES

    # -- lifecycle ----------------------------------------------------------------
    @contextmanager
    def open(self, paths: Iterable[str]) -> Iterator[SnapshotView]:
        paths = normalise(paths)
        subvols = self._subvolumes_for(paths)  # parents before the subvolumes nested in them
        view = SnapshotView(self.name, {})
        taken: list[str] = []
        binds: list[str] = []
        try:
            for sv in subvols:
                snap = self._snapshot(sv)
                taken.append(snap)
                view.roots[sv] = snap
                view.ids.append(snap)
            for sv in subvols:
                parent = self._enclosing(sv, subvols)
                if parent is not None:
                    # A walk through the parent's snapshot meets an empty placeholder
                    # where the nested subvolume was: mount its own snapshot there,
                    # so whoever walks the parent's snapshot sees the whole tree.
                    target = os.path.join(view.roots[parent], os.path.relpath(sv, parent))
                    self._bind(view.roots[sv], target)
                    binds.append(target)
            if len(subvols) > 1:
                view.warnings.append(
                    f"btrfs: {len(subvols)} subvolumes snapshotted one after another "
                    "(btrfs cannot snapshot several subvolumes in one instant)"
                )
            yield view
        finally:
            errors = [e for t in reversed(binds) if (e := self._unbind(t))]
            errors += [e for snap in reversed(taken) if (e := self._delete(snap))]
            # What could not be released stays in the ledger: the next start retries.
            view.warnings.extend(errors)

    def cleanup_stale(self) -> list[str]:
        lines = []
        entries = self.ledger.entries(self.name)
        # Bind mounts first (deepest first), then the snapshots under them.
        for entry in sorted(entries, key=lambda e: (e.get("kind") != "bind", -len(e["key"]))):
            key = entry["key"]
            if entry.get("kind") == "bind":
                err = self._unbind(key)
                lines.append(err or f"btrfs: unmounted stale bind mount {key}")
                continue
            if not os.path.exists(key):
                self.ledger.remove(self.name, key)
                lines.append(f"btrfs: stale snapshot {key} already gone")
                continue
            err = self._delete(key)
            lines.append(err or f"btrfs: removed stale snapshot {key}")
        return lines

    @staticmethod
    def _enclosing(sv: str, subvols: list[str]) -> str | None:
        """The deepest other snapshotted subvolume that contains ``sv``."""
        parents = [p for p in subvols if p != sv and sv.startswith(p.rstrip("/") + "/")]
        return max(parents, key=len) if parents else None

    def _bind(self, source: str, target: str) -> None:
        self.ledger.add(self.name, target, kind="bind", source=source)
        res = self.runner(["mount", "--bind", source, target])
        if not res.ok:
            self.ledger.remove(self.name, target)
            raise SnapshotError(
                f"btrfs: cannot show nested subvolume at {target}: {res.describe()}"
            )

    def _unbind(self, target: str) -> str | None:
        res = self.runner(["umount", target])
        if not res.ok and "not mounted" not in res.output and os.path.exists(target):
            res = self.runner(["umount", "-l", target])  # lazy: a reader still holds it
            if not res.ok and "not mounted" not in res.output:
                return f"btrfs: could not unmount {target}: {res.describe()}"
        self.ledger.remove(self.name, target)
        return None

    # -- pieces ---------------------------------------------------------------------
    def _subvolumes_for(self, paths: list[str]) -> list[str]:
        """Subvolume roots holding the sources, plus nested subvolumes below them."""
        roots: list[str] = []
        for p in paths:
            root = subvolume_root(p)
            if root not in roots:
                roots.append(root)
            for nested in self._nested(root):
                if (nested == p or nested.startswith(p.rstrip("/") + "/")) and nested not in roots:
                    roots.append(nested)
        return roots

    def _nested(self, root: str) -> list[str]:
        """Subvolumes below ``root``, recursively. ``btrfs subvolume list -o``
        prints paths relative to the filesystem's top level (which need not be
        mounted), so they are mapped back through ``root``'s own top-level path
        from ``btrfs subvolume show``, and each is confirmed by its inode (256)."""
        res = self.runner(["btrfs", "subvolume", "list", "-o", root], timeout=60)
        if not res.ok:
            return []
        show = self.runner(["btrfs", "subvolume", "show", root], timeout=60)
        # First line of `show` is the subvolume's path from the top level
        # ("/" for the top level itself, in some versions "<FS_TREE>").
        own = show.stdout.splitlines()[0].strip() if show.ok and show.stdout else ""
        own = "" if own in ("/", "<FS_TREE>") else own.strip("/")
        found = []
        for line in res.stdout.splitlines():
            if " path " not in line:
                continue
            rel = line.split(" path ", 1)[1].strip()
            rel = rel.removeprefix("<FS_TREE>/")
            if own and rel.startswith(own + "/"):
                rel = rel[len(own) + 1 :]
            elif own:
                continue
            if rel.split("/", 1)[0] == SNAPSHOT_DIR:
                continue
            candidate = os.path.join(root, rel)
            try:
                if os.stat(candidate).st_ino == BTRFS_FIRST_FREE_OBJECTID:
                    found.append(candidate)
                    found.extend(self._nested(candidate))
            except OSError:
                continue
        return found

    def _snapshot(self, subvol: str) -> str:
        base = os.path.join(subvol, SNAPSHOT_DIR)
        snap = os.path.join(base, uuid.uuid4().hex[:12])
        os.makedirs(base, exist_ok=True)
        # Recorded before it exists: a crash right after creation still leaves a trace.
        self.ledger.add(self.name, snap, source=subvol)
        res = self.runner(["btrfs", "subvolume", "snapshot", "-r", subvol, snap])
        if not res.ok:
            self.ledger.remove(self.name, snap)
            raise SnapshotError(f"btrfs snapshot of {subvol}: {res.describe()}")
        return snap

    def _delete(self, snap: str) -> str | None:
        res = self.runner(["btrfs", "subvolume", "delete", snap])
        if not res.ok and os.path.exists(snap):
            return f"btrfs: could not remove snapshot {snap}: {res.describe()}"
        self.ledger.remove(self.name, snap)
        try:
            os.rmdir(os.path.dirname(snap))  # only succeeds when no other run uses it
        except OSError:
            pass
        return None
