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


def run_restore(ctx: JobContext, repo) -> JobOutcome:
    """Restore a snapshot to its original paths (no ``target``) or under
    ``target`` (files keep their absolute path below it, so several sources
    never collide). An existing local file is replaced only when the
    snapshot's copy is newer (``if-newer``), unless ``overwrite`` is set; a
    newer local file is never replaced without it. Content is verified
    against its chunk ids as it is written (the engine)."""
    from agent.engine import restore as engine_restore

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
    result = _call(
        engine_restore.run_restore,
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
    problems = [f"{getattr(e, 'path', '')}: {getattr(e, 'message', e)}" for e in result.errors]
    warnings = _warnings_list(result) + problems
    stats = {**_stats_dict(result), "snapshot_id": result.snapshot_id, "target": target}
    stats["overwrite"] = overwrite
    if problems:
        return JobOutcome(
            "failed",
            error=f"{len(problems)} files could not be restored",
            warnings=warnings,
            stats=stats,
        )
    return JobOutcome("succeeded", warnings=warnings, stats=stats)
