"""Running jobs (backup, restore, verify) on the engine, in a worker thread.

Each job gets a ``JobContext``: a cancel event, a progress sink (called from
the engine's threads, rate-limited here), and the policy in force. Backups
read through point-in-time snapshots honouring the policy's open-file mode
(agent/snapshots) and hold the policy's optional CPU ceiling
(agent/throttle.py); background priority, the bandwidth limit and the pause
gate are applied by the daemon (agent/daemon/daemon.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent import policy as contract
from agent.daemon.state import State
from agent.engine import backup as engine_backup
from agent.engine import check as engine_check
from agent.engine import remap
from agent.engine import restore as engine_restore
from agent.engine.errors import BackupCancelled
from agent.policy import Policy
from agent.policy.knownfolders import os_name, resolve_entry, resolve_token
from agent.policy.sources import Sources, split_token
from agent.snapshots import chooser
from agent.throttle import CpuCeiling

log = logging.getLogger("cairn.agent.jobs")

#: torn files named in a job's statistics (the count is always complete)
MAX_INCONSISTENT_LISTED = 100


class JobCancelled(Exception):
    pass


@dataclass
class JobOutcome:
    state: str  # succeeded | partial | failed | cancelled
    snapshot_id: str = ""
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


@dataclass
class JobContext:
    job_id: str
    kind: str
    trigger: str
    command_id: str = ""
    args: dict = field(default_factory=dict)
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.time)
    progress: dict = field(default_factory=dict)
    on_progress: object = None  # callable(dict) or None

    @classmethod
    def new(cls, kind: str, trigger: str, command_id: str = "", args: dict | None = None):
        return cls(
            job_id=uuid.uuid4().hex,
            kind=kind,
            trigger=trigger,
            command_id=command_id,
            args=args or {},
        )

    def report(self, **values) -> None:
        self.progress.update(values)
        if self.on_progress is not None:
            self.on_progress(dict(self.progress))


# --- policy → backup inputs -------------------------------------------------------------

#: before the first policy arrives: nothing is backed up unless a command
#: names paths, and nothing is excluded from what it names.
NO_POLICY = Policy(sources=Sources(windows=(), macos=(), linux=()), excludes=())


def current_policy(state: State) -> Policy | None:
    """The applied policy, typed (None before the first one arrives)."""
    stored = state.policy
    if not stored:
        return None
    try:
        return contract.load(stored)
    except contract.PolicyError as exc:  # written by an older agent, now unreadable
        log.warning("the stored policy cannot be used: %s", exc)
        return None


def policy_sources(policy: Policy | Mapping) -> tuple[list[str], list[str]]:
    """(existing absolute paths, warnings) for this OS from the policy. Known
    folders are asked of the OS (agent/policy/knownfolders.py); a listed path
    that does not exist is a warning, a known folder this PC lacks is not."""
    system = os_name()
    paths: list[str] = []
    warnings: list[str] = []
    for entry in contract.load(policy).sources.for_os(system):
        is_token = split_token(entry) is not None
        for candidate in resolve_entry(entry, system):
            p = os.path.abspath(os.path.expanduser(candidate))
            if os.path.exists(p):
                if p not in paths:
                    paths.append(p)
            elif not is_token:
                warnings.append(f"source {p} does not exist on this PC")
    return paths, warnings


# --- engine calls -------------------------------------------------------------------------


def _progress_adapter(ctx: JobContext):
    """The engine's progress callback: takes the engine's progress dataclass
    (BackupProgress, RestoreProgress, CheckProgress), reports to ``ctx`` at
    most every 0.5 s and stops the job when it is cancelled."""
    last = [0.0]

    def progress(info) -> None:
        if ctx.cancel.is_set():
            raise JobCancelled()
        now = time.monotonic()
        if now - last[0] < 0.5:
            return
        last[0] = now
        values = dataclasses.asdict(info)
        bytes_done = int(values.get("bytes_done") or 0)
        bytes_total = int(values.get("bytes_total") or 0)
        ctx.report(
            files_done=int(values.get("files_done") or 0),
            files_total=int(values.get("files_total") or 0),
            bytes_done=bytes_done,
            bytes_total=bytes_total,
            percent=100.0 * bytes_done / bytes_total if bytes_total else 0.0,
            current_path=str(values.get("current") or ""),
        )

    return progress


def _scalars(values: dict) -> dict:
    return {k: v for k, v in values.items() if isinstance(v, int | float | str | bool)}


def _warnings_list(issues) -> list[str]:
    """BackupWarning / RestoreIssue (path, kind, message) as report lines."""
    return [f"{w.kind}: {w.path}: {w.message}".rstrip(": ") for w in issues]


def run_backup(
    ctx: JobContext, repo, policy: Policy | Mapping, state_dir: str | None = None
) -> JobOutcome:
    policy = contract.load(policy)
    paths, warnings = policy_sources(policy)
    if ctx.args.get("paths"):
        paths = [os.path.abspath(p) for p in ctx.args["paths"]]
    if not paths:
        return JobOutcome(
            "failed", error="no source folder of the policy exists on this PC", warnings=warnings
        )
    excludes = list(policy.excludes)
    excludes += [p for p in chooser.own_folders_excludes(state_dir) if p not in excludes]
    mode = policy.open_files
    cpu_percent = policy.limits.cpu_ceiling
    progress = _progress_adapter(ctx)
    if cpu_percent > 0:
        # The engine calls progress from the thread that reads files: pacing
        # there holds the whole pipeline under the ceiling (agent/throttle.py).
        progress = CpuCeiling(cpu_percent).paced(progress, ctx.cancel)
    pit = None  # the point-in-time view; its warnings are complete once released
    result = None
    with contextlib.ExitStack() as stack:
        if mode != "off":
            try:
                pit = stack.enter_context(chooser.point_in_time(paths, mode, state_dir=state_dir))
            except Exception as exc:
                if mode == "required":
                    return JobOutcome(
                        "failed", error=f"no point-in-time snapshot: {exc}", warnings=warnings
                    )
                warnings.append(f"no point-in-time snapshot ({exc}); consistent read instead")
        ctx.report(files_done=0, bytes_done=0, percent=0.0)
        try:
            options = engine_backup.BackupOptions(
                excludes=tuple(excludes),
                translate=pit.translate if pit is not None else None,
                frozen=pit.covers if pit is not None else None,
                progress=progress,
                cancel=ctx.cancel,
                tags=(ctx.trigger,),
            )
            result = engine_backup.run_backup(repo, paths, options)
        except Exception as exc:
            if not (ctx.cancel.is_set() or isinstance(exc, BackupCancelled | JobCancelled)):
                raise
    # After the block: problems releasing the snapshot are appended on exit.
    if pit is not None:
        warnings += pit.warnings
    if result is None:
        return JobOutcome("cancelled", error="cancelled", warnings=warnings)
    stats = _scalars(result.stats.to_dict())
    report = (pit or chooser.PointInTime(chooser.OpenFileMode(mode))).report(paths)
    if pit is None and mode != "off":
        for entry in report["sources"]:
            entry["live"] = "the snapshot could not be taken (see the warnings)"
    stats["point_in_time"] = report
    # Files stored flagged (torn): the console says which have no consistent
    # copy within the RPO. Bounded: a report is not a file list.
    torn = [w.path for w in result.warnings if w.kind == "changed-during-read"]
    stats["inconsistent_files"] = torn[:MAX_INCONSISTENT_LISTED]
    stats["inconsistent_count"] = len(torn)
    return JobOutcome(
        "succeeded",
        snapshot_id=result.snapshot_id,
        warnings=warnings + _warnings_list(result.warnings),
        stats=stats,
    )


def run_verify(ctx: JobContext, repo) -> JobOutcome:
    report = engine_check.run_check(
        repo,
        read_data=bool(ctx.args.get("read_data", False)),
        progress=_progress_adapter(ctx),
        cancel=ctx.cancel,
    )
    errors = [str(e) for e in report.errors]
    return JobOutcome(
        "succeeded" if report.ok else "failed",
        error="; ".join(errors[:5]),
        warnings=errors,
    )


def run_restore(ctx: JobContext, repo) -> JobOutcome:
    """Restore a snapshot to its original paths (no ``target``) or under
    ``target`` (files keep their absolute path below it, so several sources
    never collide). An existing local file is replaced only when the
    snapshot's copy is newer (``if-newer``), unless ``overwrite`` is set; a
    newer local file is never replaced without it. Content is verified
    against its chunk ids as it is written (the engine)."""
    args = ctx.args
    snapshot = args.get("snapshot") or args.get("snapshot_id") or "latest"
    # No target: in place. The engine maps each repository path back to its
    # own drive or share (passing the Windows root C:\ would nest C:\C\Users).
    target = args.get("target") or None
    overwrite = args.get("overwrite", False)
    if overwrite not in ("never", "if-newer", "always"):
        overwrite = "always" if overwrite else "if-newer"
    include = args.get("include") or args.get("paths") or []
    if isinstance(include, str):
        include = [include]
    if target:
        os.makedirs(target, exist_ok=True)
    result = engine_restore.run_restore(
        repo,
        snapshot,
        target,
        include=include,
        overwrite=overwrite,
        progress=_progress_adapter(ctx),
        cancel=ctx.cancel,
    )
    if ctx.cancel.is_set():
        return JobOutcome("cancelled", error="cancelled")
    problems = [f"{e.path}: {e.message}" for e in result.errors]
    warnings = _warnings_list(result.warnings) + problems
    stats = {
        **_scalars(result.stats.to_dict()),
        "snapshot_id": result.snapshot_id,
        "target": target,
    }
    stats["overwrite"] = overwrite
    if problems:
        return JobOutcome(
            "failed",
            error=f"{len(problems)} files could not be restored",
            warnings=warnings,
            stats=stats,
        )
    return JobOutcome("succeeded", warnings=warnings, stats=stats)


#: bounds on what a restore-onto command may carry (the console is trusted,
#: but a malformed command must fail cleanly, not run away)
MAX_MAPPED_PATHS = 1000


def mapped_destinations(mapping: Mapping, resolve=None) -> tuple[list, list[str]]:
    """[(remap.Entry, native destination)] on this machine for a restore onto
    another device, and the entries that cannot be mapped (in words)."""
    resolve = resolve or resolve_token
    src_os = str(mapping.get("source_os") or "")
    entries = mapping.get("entries") or []
    if not isinstance(entries, list) or len(entries) > MAX_MAPPED_PATHS:
        raise ValueError("the restore command's path mapping is malformed")
    out, problems = [], []
    for item in entries:
        if not (
            isinstance(item, list) and len(item) == 3 and all(isinstance(v, str) for v in item)
        ):
            raise ValueError("the restore command's path mapping is malformed")
        entry = remap.Entry(*item)
        try:
            out.append((entry, remap.destination(entry, src_os, os_name(), resolve)))
        except remap.RemapError as exc:
            problems.append(f"{entry.source}: {exc}")
    return out, problems


def _newer(src: str, dst: str) -> bool:
    return os.lstat(src).st_mtime > os.lstat(dst).st_mtime


def _give_to(path: str, owner: tuple[int, int] | None) -> None:
    """Hand what was moved in to the profile's owner (the agent runs as root):
    lchown, never following a link."""
    if owner is None:
        return
    os.lchown(path, *owner)
    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), *owner)


def _profile_owner(resolve) -> tuple[int, int] | None:
    """Owner of this machine's user profile, when the agent runs as root."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    home = resolve(remap.HOME_TOKEN[os_name()])
    if not home:
        return None
    st = os.stat(home[0])
    return (st.st_uid, st.st_gid) if st.st_uid != 0 else None


def _move_into(
    restored: str, dst: str, overwrite: str, owner: tuple[int, int] | None = None
) -> tuple[int, list[str]]:
    """Move what a staged restore wrote at ``restored`` to ``dst`` (same
    volume): whole when ``dst`` does not exist, else file by file, an
    existing file replaced per ``overwrite``. Links on the way are not
    followed (os.walk without followlinks; a destination folder that is a
    link is refused). Returns (files kept as they were, problems)."""
    if not os.path.lexists(dst):
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        os.replace(restored, dst)
        _give_to(dst, owner)
        return 0, []
    if not os.path.isdir(restored) or os.path.islink(restored):
        if os.path.isdir(dst) or os.path.islink(dst):
            return 0, [f"{dst}: exists and is not a file"]
        if overwrite == "always" or (overwrite == "if-newer" and _newer(restored, dst)):
            os.replace(restored, dst)
            _give_to(dst, owner)
            return 0, []
        return 1, []
    if os.path.islink(dst) or not os.path.isdir(dst):
        return 0, [f"{dst}: exists and is not a folder"]
    kept, problems = 0, []
    for root, dirs, files in os.walk(restored):
        rel = os.path.relpath(root, restored)
        here = dst if rel == "." else os.path.join(dst, rel)
        if os.path.islink(here) or (os.path.lexists(here) and not os.path.isdir(here)):
            problems.append(f"{here}: exists and is not a folder")
            dirs[:] = []
            continue
        if not os.path.lexists(here):
            os.makedirs(here)
            _give_to(here, owner)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            src, target = os.path.join(root, name), os.path.join(here, name)
            if os.path.lexists(target):
                if os.path.isdir(target) and not os.path.islink(target):
                    problems.append(f"{target}: exists and is a folder")
                    continue
                if not (overwrite == "always" or (overwrite == "if-newer" and _newer(src, target))):
                    kept += 1
                    continue
            os.replace(src, target)
            _give_to(target, owner)
    return kept, problems


def run_restore_onto(ctx: JobContext, repo) -> JobOutcome:
    """Restore another device's snapshot onto this machine (issue 11): each
    planned path mapped onto this user's profile and OS (agent/engine/remap.py,
    known folders resolved here), restored by the engine (names through
    paths.safe_name, content verified against its chunk ids as it is written)
    into a staging folder next to its destination, then moved into place.
    With a ``target`` folder, paths keep their repository path below it."""
    args = ctx.args
    if args.get("target"):
        return run_restore(ctx, repo)
    snapshot = args.get("snapshot_id") or "latest"
    overwrite = args.get("overwrite", False)
    if overwrite not in ("never", "if-newer", "always"):
        overwrite = "always" if overwrite else "if-newer"
    try:
        planned, problems = mapped_destinations(args.get("mapping") or {})
    except ValueError as exc:
        return JobOutcome("failed", error=str(exc))
    totals: dict = {}
    kept = 0
    done = []
    owner = _profile_owner(resolve_token)
    for entry, dst in planned:
        if ctx.cancel.is_set():
            return JobOutcome("cancelled", error="cancelled")
        parent = os.path.dirname(dst.rstrip(os.sep)) or os.sep
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".cairn-restore-", dir=parent)
        try:
            result = engine_restore.run_restore(
                repo,
                snapshot,
                staging,
                include=[entry.source],
                overwrite="always",
                restore_owner=False,
                progress=_progress_adapter(ctx),
                cancel=ctx.cancel,
            )
            problems += [f"{e.path}: {e.message}" for e in result.errors]
            for k, v in _scalars(result.stats.to_dict()).items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    totals[k] = totals.get(k, 0) + v
            restored = os.path.join(staging, *[p for p in entry.source.split("/") if p])
            if not os.path.lexists(restored):
                problems.append(f"{entry.source}: not in snapshot {snapshot}")
                continue
            k, p = _move_into(restored, dst, overwrite, owner)
            kept += k
            problems += p
            done.append({"source": entry.source, "destination": dst})
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if ctx.cancel.is_set():
        return JobOutcome("cancelled", error="cancelled")
    stats = {
        **totals,
        "snapshot_id": snapshot,
        "source_device": str(args.get("source_device") or ""),
        "mapped": done[:MAX_MAPPED_PATHS],
        "kept_local": kept,
        "overwrite": overwrite,
    }
    if problems:
        return JobOutcome(
            "failed",
            error=f"{len(problems)} paths or files could not be restored",
            warnings=problems,
            stats=stats,
        )
    return JobOutcome("succeeded", stats=stats)
