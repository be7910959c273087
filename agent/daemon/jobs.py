"""Running jobs (backup, restore, verify) on the engine, in a worker thread.

Each job gets a ``JobContext``: a cancel event, a progress sink (called from
the engine's threads, rate-limited here), and the policy in force. The
comfort pieces are used when present: background priority
(agent/priority.py), the bandwidth limit (agent/throttle.py), the pause gate
(agent/power.py) and point-in-time snapshots honouring the policy's
open-file mode (agent/snapshots).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("cairn.agent.jobs")


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


def os_name() -> str:
    return {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")


def _xdg_dir(name: str, fallback: str) -> str:
    home = Path.home()
    cfg = Path(os.environ.get("XDG_CONFIG_HOME", home / ".config")) / "user-dirs.dirs"
    try:
        for line in cfg.read_text().splitlines():
            if line.startswith(f"XDG_{name}_DIR="):
                value = line.split("=", 1)[1].strip().strip('"')
                return value.replace("$HOME", str(home))
    except OSError:
        pass
    return str(home / fallback)


def resolve_token(token: str) -> list[str]:
    """Known-folder tokens (console/policies/spec.py) to paths on this PC."""
    home = Path.home()
    system = os_name()
    if system == "linux":
        table = {
            "{Home}": [str(home)],
            "{Documents}": [_xdg_dir("DOCUMENTS", "Documents")],
            "{Desktop}": [_xdg_dir("DESKTOP", "Desktop")],
            "{Pictures}": [_xdg_dir("PICTURES", "Pictures")],
            "{Downloads}": [_xdg_dir("DOWNLOAD", "Downloads")],
            "{Music}": [_xdg_dir("MUSIC", "Music")],
            "{Videos}": [_xdg_dir("VIDEOS", "Videos")],
        }
    elif system == "macos":
        table = {
            "{Home}": [str(home)],
            "{Documents}": [str(home / "Documents")],
            "{Desktop}": [str(home / "Desktop")],
            "{Pictures}": [str(home / "Pictures")],
            "{Downloads}": [str(home / "Downloads")],
            "{Music}": [str(home / "Music")],
            "{Movies}": [str(home / "Movies")],
            "{OutlookData}": [str(home / "Library/Group Containers/UBF8T346G9.Office/Outlook")],
        }
    else:
        profile = Path(os.environ.get("USERPROFILE", home))
        local = Path(os.environ.get("LOCALAPPDATA", profile / "AppData/Local"))
        table = {
            "{UserProfile}": [str(profile)],
            "{Documents}": [str(profile / "Documents")],
            "{Desktop}": [str(profile / "Desktop")],
            "{Pictures}": [str(profile / "Pictures")],
            "{Downloads}": [str(profile / "Downloads")],
            "{Music}": [str(profile / "Music")],
            "{Videos}": [str(profile / "Videos")],
            "{Favorites}": [str(profile / "Favorites")],
            "{OneDrive}": [os.environ.get("ONEDRIVE", str(profile / "OneDrive"))],
            "{AppDataRoaming}": [os.environ.get("APPDATA", str(profile / "AppData/Roaming"))],
            "{OutlookData}": [
                str(profile / "Documents/Outlook Files"),
                str(local / "Microsoft/Outlook"),
            ],
        }
    return table.get(token, [])


def policy_sources(policy: dict) -> tuple[list[str], list[str]]:
    """(existing absolute paths, warnings) for this OS from the policy."""
    sources = (policy or {}).get("sources") or {}
    entries = sources.get(os_name(), []) if isinstance(sources, dict) else list(sources)
    paths: list[str] = []
    warnings: list[str] = []
    for entry in entries:
        candidates = [entry]
        if entry.startswith("{") and "}" in entry:
            token, rest = entry[: entry.index("}") + 1], entry[entry.index("}") + 1 :]
            candidates = [base + rest for base in resolve_token(token)]
        for c in candidates:
            p = os.path.abspath(os.path.expanduser(c))
            if os.path.exists(p):
                if p not in paths:
                    paths.append(p)
            elif not entry.startswith("{"):
                warnings.append(f"source {p} does not exist on this PC")
    return paths, warnings


# --- engine calls -------------------------------------------------------------------------


def _call(fn, *args, **kwargs):
    """Call an engine function with the keyword arguments it accepts."""
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(*args, **kwargs)


def _progress_adapter(ctx: JobContext):
    last = [0.0]

    def progress(*args, **kwargs):
        if ctx.cancel.is_set():
            raise JobCancelled()
        now = time.monotonic()
        if now - last[0] < 0.5:
            return
        last[0] = now
        info = args[0] if args else kwargs
        if dataclasses.is_dataclass(info):
            info = dataclasses.asdict(info)
        elif not isinstance(info, dict):
            info = {k: getattr(info, k) for k in dir(info) if not k.startswith("_")}
        files_done = int(info.get("files_done", info.get("files", 0)) or 0)
        files_total = int(info.get("files_total", 0) or 0)
        bytes_done = int(info.get("bytes_done", info.get("bytes_read", info.get("bytes", 0))) or 0)
        bytes_total = int(info.get("bytes_total", 0) or 0)
        percent = info.get("percent")
        if percent is None:
            percent = 100.0 * bytes_done / bytes_total if bytes_total else 0.0
        ctx.report(
            files_done=files_done,
            files_total=files_total,
            bytes_done=bytes_done,
            bytes_total=bytes_total,
            percent=float(percent),
            current_path=str(info.get("current") or info.get("current_path") or ""),
        )

    return progress


def _stats_dict(result) -> dict:
    stats = getattr(result, "stats", None) or {}
    if hasattr(stats, "to_dict"):
        stats = stats.to_dict()
    elif dataclasses.is_dataclass(stats):
        stats = dataclasses.asdict(stats)
    elif not isinstance(stats, dict):
        stats = {k: v for k, v in vars(stats).items() if not k.startswith("_")}
    return {k: v for k, v in stats.items() if isinstance(v, int | float | str | bool)}


def _warnings_list(result) -> list[str]:
    out = []
    for w in getattr(result, "warnings", None) or []:
        if hasattr(w, "kind") and hasattr(w, "path"):
            out.append(f"{w.kind}: {w.path}: {getattr(w, 'message', '')}".rstrip(": "))
        else:
            out.append(str(w))
    return out


def run_backup(ctx: JobContext, repo, policy: dict, state_dir: str | None = None) -> JobOutcome:
    from agent.engine import backup as engine_backup

    paths, warnings = policy_sources(policy)
    if ctx.args.get("paths"):
        paths = [os.path.abspath(p) for p in ctx.args["paths"]]
    if not paths:
        return JobOutcome(
            "failed", error="no source folder of the policy exists on this PC", warnings=warnings
        )
    excludes = list((policy or {}).get("excludes") or [])
    mode = (policy or {}).get("open_files", "preferred")
    with contextlib.ExitStack() as stack:
        translate = None
        try:
            from agent.snapshots.chooser import point_in_time
        except ImportError:
            point_in_time = None
        if point_in_time is not None and mode != "off":
            try:
                pit = stack.enter_context(point_in_time(paths, mode, state_dir=state_dir))
                translate = getattr(pit, "translate", None)
                warnings += [str(w) for w in getattr(pit, "warnings", [])]
            except Exception as exc:
                if mode == "required":
                    return JobOutcome(
                        "failed", error=f"no point-in-time snapshot: {exc}", warnings=warnings
                    )
                warnings.append(f"no point-in-time snapshot ({exc}); consistent read instead")
        ctx.report(files_done=0, bytes_done=0, percent=0.0)
        try:
            result = engine_backup.run_backup(
                repo,
                paths,
                excludes=excludes,
                translate=translate,
                progress=_progress_adapter(ctx),
                cancel=ctx.cancel,
                tags=[ctx.trigger],
            )
        except Exception as exc:
            if ctx.cancel.is_set() or type(exc).__name__ in ("BackupCancelled", "JobCancelled"):
                return JobOutcome("cancelled", error="cancelled", warnings=warnings)
            raise
    stats = _stats_dict(result)
    warnings += _warnings_list(result)
    return JobOutcome(
        "succeeded",
        snapshot_id=str(getattr(result, "snapshot_id", "") or ""),
        warnings=warnings,
        stats=stats,
    )


def run_verify(ctx: JobContext, repo) -> JobOutcome:
    from agent.engine import check as engine_check

    result = _call(
        engine_check.run_check,
        repo,
        read_data=bool(ctx.args.get("read_data", False)),
        progress=_progress_adapter(ctx),
        cancel=ctx.cancel,
    )
    errors = [str(e) for e in (getattr(result, "errors", None) or [])]
    ok = getattr(result, "ok", not errors)
    return JobOutcome(
        "succeeded" if ok else "failed",
        error="; ".join(errors[:5]),
        warnings=errors,
        stats=_stats_dict(result),
    )


def run_restore(ctx: JobContext, repo, staging_root: Path) -> JobOutcome:
    """Restore a snapshot to its original paths (``target`` empty) or under
    ``target``. Files are first restored to a staging folder, then moved into
    place; an existing local file that is newer than (or identical to) the
    snapshot's copy is kept unless ``overwrite`` is set."""
    from agent.engine import restore as engine_restore

    args = ctx.args
    snapshot = args.get("snapshot") or args.get("snapshot_id") or "latest"
    target = args.get("target") or ""
    overwrite = bool(args.get("overwrite", False))
    include = args.get("include") or args.get("paths") or []
    if isinstance(include, str):
        include = [include]
    dest_root = Path(target) if target else Path("/")
    stage_parent = dest_root if target else staging_root
    stage_parent.mkdir(parents=True, exist_ok=True)
    stage = Path(stage_parent) / f".cairn-restore-{ctx.job_id}"
    warnings: list[str] = []
    counts = {"restored": 0, "kept_newer_local": 0, "identical": 0, "replaced": 0}
    try:
        result = _call(
            engine_restore.run_restore,
            repo,
            snapshot,
            str(stage),
            target=str(stage),
            include=include or None,
            progress=_progress_adapter(ctx),
            cancel=ctx.cancel,
        )
        warnings += _warnings_list(result)
        if ctx.cancel.is_set():
            return JobOutcome("cancelled", error="cancelled")
        for src in sorted(p for p in stage.rglob("*") if p.is_file() or p.is_symlink()):
            rel = src.relative_to(stage)
            dest = dest_root / rel
            if dest.exists() or dest.is_symlink():
                if not overwrite:
                    if _same(src, dest):
                        counts["identical"] += 1
                        continue
                    if dest.lstat().st_mtime >= src.lstat().st_mtime:
                        counts["kept_newer_local"] += 1
                        warnings.append(f"kept newer local file {dest}")
                        continue
                counts["replaced"] += 1
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(src, dest)
            except OSError:
                shutil.move(str(src), str(dest))
            counts["restored"] += 1
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    stats = {**_stats_dict(result), **counts, "snapshot": str(snapshot), "target": str(dest_root)}
    return JobOutcome("succeeded", warnings=warnings, stats=stats)


def _same(a: Path, b: Path) -> bool:
    try:
        if a.is_symlink() or b.is_symlink():
            return a.is_symlink() and b.is_symlink() and os.readlink(a) == os.readlink(b)
        sa, sb = a.stat(), b.stat()
        if sa.st_size != sb.st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                x, y = fa.read(1 << 20), fb.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False
