"""Check: is everything every snapshot needs present, and (``read_data``) intact?

Structure (always):
  * every index object loads (authenticates and parses);
  * every pack the index names exists and is long enough for its blobs;
  * every snapshot object loads; every tree of every snapshot resolves
    through the index and decrypts; every file's chunks are in the index;
    every entry name is one path component, unique in its directory
    (``paths.safe_name``: a name restore would refuse is damage).
Data (``read_data=True``; ``packs`` narrows it to a subset, the rest is
checked for size only, so a verification can read a rotating sample):
  * every pack (of the subset) is read whole: its name must equal the BLAKE3 of its bytes,
    its header must authenticate and agree with the index, and every blob
    must decrypt, decompress and hash back to its id.

Every problem that affects files is reported by snapshot and path, so an
admin knows exactly what is damaged. Packs nobody references (left by an
interrupted backup) are reported as information: harmless, reclaimable.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import blake3

from agent.engine import paths as pathmap
from agent.engine.errors import CheckCancelled, CorruptObject, UnsafeName, UnsupportedVersion
from agent.engine.pack import read_pack_header
from agent.engine.repository import Repository
from agent.engine.store import StoreError
from agent.engine.tree import DIR, FILE, display_path

#: listed per file at most; a shared damaged chunk can hit thousands of files
MAX_PROBLEMS = 10000


@dataclass
class CheckProblem:
    # damaged-index | missing-pack | damaged-pack | damaged-snapshot | damaged-tree |
    # missing-data | damaged-data | unsafe-name (restore skips it: see paths.safe_name)
    kind: str
    message: str
    snapshot: str | None = None
    path: str | None = None
    object: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.snapshot:
            where = f"snapshot {self.snapshot[:8]}"
            if self.path:
                where += f" {self.path}"
            where += ": "
        elif self.object:
            where = f"{self.object}: "
        return where + self.message

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class CheckProgress:
    packs_done: int = 0
    packs_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    stage: str = ""


@dataclass
class CheckReport:
    errors: list[CheckProblem] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    snapshots: int = 0
    packs: int = 0
    blobs: int = 0
    trees_checked: int = 0
    bytes_read: int = 0
    read_data: bool = False
    duration: float = 0.0
    damaged_files: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "read_data": self.read_data,
            "snapshots": self.snapshots,
            "packs": self.packs,
            "blobs": self.blobs,
            "trees_checked": self.trees_checked,
            "bytes_read": self.bytes_read,
            "damaged_files": self.damaged_files,
            "duration": self.duration,
            "errors": [e.to_dict() for e in self.errors],
            "info": self.info,
        }


def run_check(
    repo: Repository,
    read_data: bool = False,
    *,
    progress: Callable[[CheckProgress], None] | None = None,
    cancel: threading.Event | None = None,
    workers: int = 2,
    packs: Collection[str] | None = None,
) -> CheckReport:
    """Verify ``repo`` (see the module docstring). Raises CheckCancelled when
    ``cancel`` is set; damage is reported in the CheckReport, not raised.
    ``packs`` (pack ids): with ``read_data``, read only these whole."""
    check = _Check(repo, read_data, progress, workers, cancel or threading.Event())
    check.only_packs = None if packs is None else set(packs)
    return check.run()


class _Check:
    def __init__(self, repo: Repository, read_data: bool, progress, workers: int, cancel):
        self.repo = repo
        self.cancel = cancel
        self.report = CheckReport(read_data=read_data)
        self.progress_cb = progress
        self.progress = CheckProgress()
        self.workers = workers
        self.bad_blobs: dict[bytes, str] = {}  # blob id -> reason
        self._lock = threading.Lock()
        self._last = 0.0
        self.only_packs: set[str] | None = None

    def error(self, kind: str, message: str, **where) -> None:
        if len(self.report.errors) < MAX_PROBLEMS:
            self.report.errors.append(CheckProblem(kind, message, **where))

    def run(self) -> CheckReport:
        t0 = time.monotonic()
        repo = self.repo
        for key, reason in repo.damaged_indexes:
            self.error("damaged-index", reason, object=key)
        self.report.blobs = len(repo.index)
        packs_in_index = repo.index.pack_ids()
        stored = {}
        for key in repo.store.list("data/"):
            stored[key.rsplit("/", 1)[-1]] = key
        self.report.packs = len(stored)
        unreferenced = set(stored) - repo.index.named_pack_ids()
        if unreferenced:
            self.report.info.append(
                f"{len(unreferenced)} pack(s) not in any index (left by an interrupted "
                "backup): harmless, reclaimable by maintenance"
            )
        # indexed copies the index does not use (two backups stored the same
        # data at the same time): information, not damage
        for pack_id, blobs in sorted(repo.index.copies().items())[:MAX_PROBLEMS]:
            if pack_id not in stored:
                continue
            homes = sorted({h[:16] for h, _n in blobs})
            spread = max(n for _h, n in blobs)
            self.report.info.append(
                f"pack {pack_id[:16]}: {len(blobs)} blob(s) stored in {spread} packs; "
                f"the index uses {', '.join(homes)} (a duplicate from backups of the same "
                "data at the same time): harmless, reclaimable by maintenance"
            )
        by_pack: dict[str, list] = {}
        for blob_id, e in repo.index.items():
            by_pack.setdefault(e.pack_id, []).append((blob_id, e))
        for pack_id in sorted(packs_in_index - set(stored)):
            self.error(
                "missing-pack",
                f"pack is missing ({len(by_pack.get(pack_id, []))} blobs lost)",
                object=f"data/{pack_id[:2]}/{pack_id}",
            )
            for blob_id, _e in by_pack.get(pack_id, []):
                self.bad_blobs[blob_id] = f"pack {pack_id[:16]} is missing"
        present = sorted(packs_in_index & set(stored))
        if self.report.read_data:
            only = self.only_packs
            read = present if only is None else [p for p in present if p in only]
            self._read_packs(read, by_pack, stored)
            if only is not None:
                self._check_pack_sizes([p for p in present if p not in only], by_pack, stored)
        else:
            self._check_pack_sizes(present, by_pack, stored)
        self._check_snapshots()
        self.report.duration = round(time.monotonic() - t0, 3)
        return self.report

    # --- packs --------------------------------------------------------------------------
    def _check_pack_sizes(self, packs, by_pack, stored) -> None:
        def size(pack_id):
            try:
                return pack_id, self.repo.store.size(stored[pack_id])
            except StoreError as exc:
                return pack_id, exc

        with ThreadPoolExecutor(max_workers=8) as pool:
            for pack_id, got in pool.map(size, packs):
                if isinstance(got, Exception):
                    self.error("damaged-pack", f"cannot stat pack: {got}", object=stored[pack_id])
                    continue
                short = [b for b, e in by_pack[pack_id] if e.offset + e.length > got]
                if short:
                    self.error(
                        "damaged-pack",
                        f"pack is truncated ({got} bytes; {len(short)} blobs past its end)",
                        object=stored[pack_id],
                    )
                    for b in short:
                        self.bad_blobs[b] = f"pack {pack_id[:16]} is truncated"

    def _read_packs(self, packs, by_pack, stored) -> None:
        self.progress.packs_total = len(packs)
        self.progress.stage = "reading data"

        def verify(pack_id):
            key = stored[pack_id]
            try:
                data = self.repo.store.get(key)
            except StoreError as exc:
                return (
                    pack_id,
                    0,
                    [("damaged-pack", f"cannot read pack: {exc}")],
                    {b: "pack unreadable" for b, _ in by_pack[pack_id]},
                )
            problems, bad = [], {}
            if blake3.blake3(data, max_threads=1).hexdigest() != pack_id:
                problems.append(("damaged-pack", "pack content does not match its name"))
            try:
                header = {e.id: e for e in read_pack_header(self.repo.cipher, data, what="pack")}
            except (CorruptObject, UnsupportedVersion) as exc:
                problems.append(("damaged-pack", str(exc)))
                header = None
            view = memoryview(data)
            for blob_id, e in by_pack[pack_id]:
                h = header.get(blob_id) if header is not None else None
                if header is not None and (
                    h is None
                    or (h.offset, h.length, h.raw_length) != (e.offset, e.length, e.raw_length)
                ):
                    problems.append(
                        (
                            "damaged-index",
                            f"index and pack header disagree on blob {blob_id.hex()[:16]}",
                        )
                    )
                try:
                    self.repo.open_blob(blob_id, e, view[e.offset : e.offset + e.length])
                except CorruptObject as exc:
                    bad[blob_id] = str(exc)
            return pack_id, len(data), problems, bad

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for pack_id, nbytes, problems, bad in pool.map(verify, packs):
                for kind, msg in problems:
                    self.error(kind, msg, object=stored[pack_id])
                if bad:
                    self.error(
                        "damaged-pack",
                        f"{len(bad)} damaged blob(s), first: {next(iter(bad.values()))}",
                        object=stored[pack_id],
                    )
                self.bad_blobs.update(bad)
                self.report.bytes_read += nbytes
                self.progress.packs_done += 1
                self.progress.bytes_done += nbytes
                self._report()
                if self.cancel.is_set():
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise CheckCancelled("check cancelled")

    # --- snapshots and trees -----------------------------------------------------------
    def _check_snapshots(self) -> None:
        repo = self.repo
        errors: list = []
        snaps = repo.snapshots(errors=errors)
        for sid, msg in errors:
            self.error("damaged-snapshot", msg, snapshot=sid)
        self.report.snapshots = len(snaps)
        self.progress.stage = "checking snapshots"
        # Problems found under a tree, memoised by tree id with paths relative
        # to it: shared subtrees are checked once, reported per snapshot.
        # Names are judged by the snapshot's path flavour: one memo per flavour.
        memos: dict[str, dict[bytes, list[tuple[bytes, str, str]]]] = {}
        damaged_files: set[tuple[str, bytes]] = set()
        for snap in snaps:
            if self.cancel.is_set():
                raise CheckCancelled("check cancelled")
            flavour = pathmap.flavour_named(snap.path_flavour)
            memo = memos.setdefault(flavour.name, {})
            for rel, kind, msg in self._tree_problems(snap.tree, memo, flavour):
                self.error(kind, msg, snapshot=snap.id, path=display_path(rel or b"/"))
                if kind in ("missing-data", "damaged-data"):
                    damaged_files.add((snap.id, rel))
        self.report.damaged_files = len(damaged_files)

    def _tree_problems(self, tree_id: str, memo, flavour) -> list[tuple[bytes, str, str]]:
        try:
            root = bytes.fromhex(tree_id)  # memo keys are raw ids, as subtrees are
        except ValueError as exc:
            return [(b"", "damaged-tree", f"directory listing unreadable: {exc}")]
        # Iterative post-order so deep trees do not hit the recursion limit.
        stack = [(root, False)]
        while stack:
            tid, expanded = stack.pop()
            if tid in memo:
                continue
            bad_nodes: list[str] = []
            try:
                nodes = self.repo.load_nodes(tid, errors=bad_nodes)
            except (CorruptObject, UnsupportedVersion, StoreError, ValueError) as exc:
                memo[tid] = [(b"", "damaged-tree", f"directory listing unreadable: {exc}")]
                continue
            subtrees = [n.subtree for n in nodes if n.type == DIR and n.subtree]
            if not expanded:
                pending = [s for s in subtrees if s not in memo]
                if pending:
                    stack.append((tid, True))
                    stack.extend((s, False) for s in pending)
                    continue
            self.report.trees_checked += 1
            # An entry that does not decode is reported on its own; the rest is checked.
            problems = [(b"", "damaged-tree", message) for message in bad_nodes]
            index = self.repo.index
            seen: set[bytes] = set()
            for node in nodes:
                raw = node.name
                try:
                    pathmap.safe_name(raw, flavour, flavour)
                    if raw in seen:
                        raise UnsafeName("a second entry with this name in its directory", name=raw)
                except UnsafeName as exc:
                    # Restore refuses to turn it into a path: what it holds is lost.
                    shown = b"/" + pathmap.printable_name(exc.name).encode()
                    problems.append((shown, "unsafe-name", str(exc)))
                    continue
                seen.add(raw)
                name = b"/" + raw
                if node.type == FILE:
                    missing = damaged = 0
                    reason = ""
                    for cid in node.chunk_ids:
                        if cid in self.bad_blobs:
                            damaged += 1
                            reason = reason or self.bad_blobs[cid]
                        elif cid not in index:
                            missing += 1
                    if damaged:
                        problems.append(
                            (name, "damaged-data", f"{damaged} damaged chunk(s): {reason}")
                        )
                    if missing:
                        problems.append(
                            (name, "missing-data", f"{missing} chunk(s) missing from the index")
                        )
                elif node.type == DIR and node.subtree:
                    sub = node.subtree
                    if sub not in index:
                        problems.append((name, "damaged-tree", "directory listing is missing"))
                        continue
                    for rel, k, msg in memo.get(sub, []):
                        problems.append((name + rel, k, msg))
            memo[tid] = problems[:MAX_PROBLEMS]
        return memo[root]

    def _report(self) -> None:
        if self.progress_cb is None:
            return
        now = time.monotonic()
        if now - self._last >= 0.25:
            self._last = now
            self.progress_cb(dataclasses.replace(self.progress))
