"""``cairn-agent`` / ``python -m agent``: the standalone face of the engine.

Commands: init, backup, snapshots, ls, restore, check, forget, prune (see
``--help``).

* ``--repo REPO`` (or ``CAIRN_REPOSITORY``): a local path or
  ``s3://BUCKET/PREFIX``; the S3 endpoint comes from ``CAIRN_S3_ENDPOINT``,
  credentials from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``.
* Keys: ``CAIRN_PASSWORD`` or ``CAIRN_PASSWORD_FILE`` (passphrase),
  ``CAIRN_KEY_FILE`` (32-byte organisation key: raw, hex or base64). On a
  terminal without any of them, the passphrase is asked for.
* ``--json`` prints one JSON document on stdout; ``--debug`` shows
  tracebacks. Errors are one line on stderr and a non-zero exit.

Exit status: 0 success; 1 error (or damage found by check, or files that
could not be restored); 2 usage error; 3 backup saved but some files could
not be read or kept changing (see warnings); 130 interrupted.

Adding commands (the daemon's enroll/run/status): write a function
``register(subparsers, parents)`` that calls ``subparsers.add_parser(name,
parents=parents, ...)`` and ``set_defaults(func=handler)`` where
``handler(args) -> int``, and list it in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import importlib
import json
import os
import stat as statmod
import sys
import threading
import time
import traceback
from contextlib import contextmanager

from agent import __version__

#: modules with a ``register(subparsers, parents)`` function adding commands;
#: a module that is missing is skipped (the engine CLI works on its own)
COMMAND_MODULES = ["agent.daemon.cli"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_WARNINGS = 3


class CliError(Exception):
    """A user-facing error: printed as one line."""


# --- keys and repository ----------------------------------------------------------------
def read_org_key(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise CliError(f"cannot read CAIRN_KEY_FILE {path}: {exc.strerror or exc}") from None
    if len(raw) == 32:
        return raw
    text = raw.strip()
    try:
        if len(text) == 64:
            return bytes.fromhex(text.decode("ascii"))
        key = base64.b64decode(text, validate=True)
        if len(key) == 32:
            return key
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise CliError(
        f"CAIRN_KEY_FILE {path} must hold a 32-byte key (raw, 64 hex characters, or base64)"
    )


def passphrase_from_env(*, confirm: bool = False) -> str | None:
    if "CAIRN_PASSWORD" in os.environ:
        return os.environ["CAIRN_PASSWORD"]
    path = os.environ.get("CAIRN_PASSWORD_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().rstrip("\r\n")
        except OSError as exc:
            raise CliError(
                f"cannot read CAIRN_PASSWORD_FILE {path}: {exc.strerror or exc}"
            ) from None
    if os.environ.get("CAIRN_KEY_FILE"):
        return None
    if sys.stdin.isatty() and sys.stderr.isatty():
        first = getpass.getpass("repository passphrase: ")
        if confirm and getpass.getpass("repeat passphrase: ") != first:
            raise CliError("passphrases do not match")
        return first
    return None


def credentials(*, confirm: bool = False) -> tuple[bytes | None, str | None]:
    key_file = os.environ.get("CAIRN_KEY_FILE")
    key = read_org_key(key_file) if key_file else None
    passphrase = passphrase_from_env(confirm=confirm)
    if passphrase == "":
        raise CliError("the passphrase is empty")
    if key is None and passphrase is None:
        raise CliError("no key: set CAIRN_PASSWORD, CAIRN_PASSWORD_FILE or CAIRN_KEY_FILE")
    return key, passphrase


def open_store_arg(args):
    from agent.engine.store import open_store

    if not args.repo:
        raise CliError("no repository: use --repo REPO or set CAIRN_REPOSITORY")
    return open_store(args.repo)


def open_repository(args, *, load_index: bool = True):
    from agent.engine.cache import default_cache_dir
    from agent.engine.repository import Repository
    from agent.engine.store import LocalStore

    store = open_store_arg(args)
    key, passphrase = credentials()
    # A local repository is its own cache; remote ones keep index objects and
    # tree packs locally, so later runs fetch only what is new.
    cache_dir = None
    if not isinstance(store, LocalStore) and not getattr(args, "no_cache", False):
        cache_dir = default_cache_dir()
    return Repository.open(
        store, key=key, passphrase=passphrase, load_index=load_index, cache_dir=cache_dir
    )


# --- output helpers ------------------------------------------------------------------------
def emit_json(doc) -> None:
    sys.stdout.write(json.dumps(doc, indent=1, default=str) + "\n")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def printable(text: str) -> str:
    """Paths for line-oriented output: control characters (newlines in file
    names) escaped so one entry stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def want_progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


@contextmanager
def progress_bar(args, description: str):
    """A rich progress bar on stderr when it is a terminal; yields an update
    function taking (done_bytes, total_bytes, files_done, files_total)."""
    if not want_progress(args):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[files]}"),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task(description, total=None, files="")

    def update(done: int, total: int | None, files: int, files_total: int | None):
        label = f"{files}/{files_total} files" if files_total is not None else f"{files} files"
        progress.update(task, completed=done, total=total, files=label)

    with progress:
        yield update


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")


# --- commands ------------------------------------------------------------------------------
def cmd_init(args) -> int:
    from agent.engine.repository import Repository

    store = open_store_arg(args)
    key, passphrase = credentials(confirm=True)
    repo = Repository.init(
        store, org_key=key, passphrase=passphrase, compression_level=args.compression_level
    )
    if args.json:
        emit_json({"repository_id": repo.id, "location": store.location})
    elif not args.quiet:
        print(f"created repository {repo.id[:8]} at {store.location}")
    return EXIT_OK


def cmd_backup(args) -> int:
    from agent.engine.backup import run_backup

    repo = open_repository(args)
    excludes = list(args.exclude)
    for path in args.exclude_file:
        try:
            with open(path, encoding="utf-8") as f:
                excludes += [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
        except OSError as exc:
            raise CliError(f"cannot read exclude file {path}: {exc.strerror or exc}") from None
    parent = None if args.force else (args.parent or "auto")
    cancel = threading.Event()
    with progress_bar(args, "backup") as update:
        callback = None
        if update is not None:

            def callback(p):
                update(p.bytes_done, p.bytes_total, p.files_done, p.files_total)

        try:
            result = run_backup(
                repo,
                args.paths,
                excludes=excludes,
                tags=args.tag,
                parent=parent,
                progress=callback,
                cancel=cancel,
                hostname=args.host,
            )
        except KeyboardInterrupt:
            cancel.set()
            raise
    stats = result.stats
    if args.json:
        doc = result.to_dict()
        for k in ("files_new", "files_changed", "files_unchanged", "bytes_read", "bytes_added"):
            doc[k] = getattr(stats, k)
        doc["duration"] = stats.duration
        emit_json(doc)
    else:
        for w in result.warnings[:50]:
            warn(f"{printable(w.path)}: {w.message}")
        if len(result.warnings) > 50:
            warn(f"... and {len(result.warnings) - 50} more warnings (see --json)")
        if not args.quiet:
            rate = stats.bytes_read / stats.duration if stats.duration else 0
            print(f"snapshot {result.snapshot_id[:8]} saved")
            print(
                f"files: {stats.files_new} new, {stats.files_changed} changed, "
                f"{stats.files_unchanged} unchanged ({stats.total_files} total, "
                f"{human_bytes(stats.total_bytes)})"
            )
            print(
                f"data:  {human_bytes(stats.bytes_read)} read, {human_bytes(stats.bytes_added)} "
                f"added to the repository"
            )
            print(f"time:  {stats.duration:.2f} s ({human_bytes(rate)}/s)")
    return EXIT_WARNINGS if result.warnings else EXIT_OK


def cmd_snapshots(args) -> int:
    repo = open_repository(args, load_index=False)
    errors: list = []
    snaps = repo.snapshots(errors=errors)
    if args.tag:
        snaps = [s for s in snaps if set(args.tag) <= set(s.tags)]
    if args.host:
        snaps = [s for s in snaps if s.hostname == args.host]
    for sid, msg in errors:
        warn(f"snapshot {sid[:8]}: {msg}")
    if args.json:
        emit_json([s.summary() for s in snaps])
        return EXIT_OK
    if not snaps:
        if not args.quiet:
            print("no snapshots")
        return EXIT_OK
    rows = [("ID", "Time (UTC)", "Host", "Tags", "Files", "Size", "Paths")]
    for s in snaps:
        rows.append(
            (
                s.short_id,
                s.time[:19].replace("T", " "),
                s.hostname,
                ",".join(s.tags),
                str(s.stats.get("total_files", "")),
                human_bytes(s.stats.get("total_bytes", 0)),
                ", ".join(printable(p) for p in s.paths),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    print(f"{len(snaps)} snapshot(s)")
    return EXIT_OK


def _mode_string(node) -> str:
    kinds = {
        "dir": "d",
        "symlink": "l",
        "fifo": "p",
        "socket": "s",
        "chardev": "c",
        "blockdev": "b",
    }
    return kinds.get(node.type, "-") + statmod.filemode(node.mode or 0)[1:]


def cmd_ls(args) -> int:
    from agent.engine import paths as pathmap
    from agent.engine.tree import SYMLINK, display_path

    repo = open_repository(args)
    snap = repo.find_snapshot(args.snapshot)
    # Paths of a Windows snapshot: given natively (C:\Users\ana) or as repository
    # paths (/C/Users/ana), matched case-insensitively, shown natively.
    flavour = pathmap.flavour_named(snap.path_flavour)
    wanted = args.path and pathmap.repo_pattern(args.path, flavour).rstrip("/")
    prefix = os.fsencode(wanted) if wanted else b""
    key = pathmap.case_key if flavour.case_insensitive else (lambda p: p)
    prefix_key, below = key(prefix), key(prefix + b"/")
    nodes_out = []
    found = not prefix
    for path, node in repo.walk(snap.tree):
        if prefix and not (key(path) == prefix_key or key(path).startswith(below)):
            continue
        found = True
        text = pathmap.native_display(path, flavour)
        if args.json:
            item = {k: v for k, v in node.to_dict().items() if k not in ("content",)}
            item["path"] = text
            try:
                path.decode("utf-8")
            except UnicodeDecodeError:  # the exact bytes, for names that are not UTF-8
                item["path_b64"] = base64.b64encode(path).decode()
            item.pop("name_b64", None)
            if node.type == SYMLINK and node.target is not None:
                item["target"] = display_path(node.target)
                item.pop("target_b64", None)
            item["chunks"] = len(node.chunk_ids)
            nodes_out.append(item)
        elif args.long:
            mtime = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime((node.mtime_ns or 0) / 1e9))
            user = node.user or ("" if node.uid is None else node.uid)
            group = node.group or ("" if node.gid is None else node.gid)
            line = (
                f"{_mode_string(node)} {user!s:>8} {group!s:>8} {node.file_size:>12} "
                f"{mtime} {printable(text)}"
            )
            if node.type == SYMLINK and node.target is not None:
                line += " -> " + printable(display_path(node.target))
            if node.flags:
                line += f"  [{', '.join(node.flags)}]"
            print(line)
        else:
            print(printable(text))
    if not found:
        raise CliError(f"{args.path} is not in snapshot {snap.short_id}")
    if args.json:
        emit_json({"snapshot": snap.summary(), "nodes": nodes_out})
    return EXIT_OK


def cmd_restore(args) -> int:
    from agent.engine.restore import run_restore

    repo = open_repository(args)
    snap = repo.find_snapshot(args.snapshot)
    with progress_bar(args, "restore") as update:
        callback = None
        if update is not None:

            def callback(p):
                update(p.bytes_done, p.bytes_total, p.files_done, p.files_total)

        result = run_restore(
            repo,
            snap,
            args.target,
            include=args.include,
            overwrite=args.overwrite,
            progress=callback,
        )
    if args.json:
        emit_json(result.to_dict())
    else:
        for w in result.warnings[:50]:
            warn(f"{printable(w.path)}: {w.message}")
        for e in result.errors[:50]:
            sys.stderr.write(f"error: {printable(e.path)}: {e.message}\n")
        if not args.quiet:
            st = result.stats
            print(
                f"restored snapshot {snap.short_id} to {result.target}: {st.files} files, "
                f"{st.dirs} dirs, {st.symlinks} symlinks, {human_bytes(st.bytes_written)} "
                f"in {st.duration:.2f} s"
                + (f"; {st.files_skipped} skipped" if st.files_skipped else "")
            )
    if result.errors:
        if not args.json:
            sys.stderr.write(f"cairn-agent: error: {len(result.errors)} item(s) not restored\n")
        return EXIT_ERROR
    return EXIT_OK


def cmd_check(args) -> int:
    from agent.engine.check import run_check

    repo = open_repository(args)
    if args.rebuild_index:
        from agent.engine.repair import rebuild_index

        rebuilt = rebuild_index(repo)
        if not args.json and not args.quiet:
            print(
                f"rebuilt index: {rebuilt.packs_indexed} of {rebuilt.packs_scanned} unindexed "
                f"pack(s), {rebuilt.blobs_indexed} blob(s)"
            )
        for key, reason in rebuilt.unreadable:
            warn(f"{key}: {reason}")
    with progress_bar(args, "check") as update:
        callback = None
        if update is not None:

            def callback(p):
                update(p.bytes_done, None, p.packs_done, p.packs_total)

        report = run_check(repo, read_data=args.read_data, progress=callback)
    if args.json:
        emit_json(report.to_dict())
    else:
        for problem in report.errors:
            sys.stderr.write(f"damage: {printable(str(problem))}\n")
        if not args.quiet:
            for line in report.info:
                print(f"note: {line}")
            what = "structure and data" if args.read_data else "structure"
            verdict = "no errors" if report.ok else f"{len(report.errors)} error(s)"
            print(
                f"checked {what} of {report.snapshots} snapshot(s), {report.packs} pack(s), "
                f"{report.blobs} blob(s): {verdict}"
            )
    if not report.ok:
        if not args.json:
            sys.stderr.write(
                f"cairn-agent: error: repository is damaged ({report.damaged_files} file(s) "
                f"affected, {len(report.errors)} problem(s))\n"
            )
        return EXIT_ERROR
    return EXIT_OK


def retention_from_args(args):
    from agent.engine.retention import RetentionPolicy, parse_duration

    policy = RetentionPolicy(
        keep_last=args.keep_last,
        keep_hourly=args.keep_hourly,
        keep_daily=args.keep_daily,
        keep_weekly=args.keep_weekly,
        keep_monthly=args.keep_monthly,
        keep_yearly=args.keep_yearly,
        keep_within=parse_duration(args.keep_within) if args.keep_within else None,
        keep_tags=frozenset(args.keep_tag),
    )
    if policy.empty:
        raise CliError("no retention rule given (--keep-last, --keep-daily, ...): nothing to do")
    return policy


def cmd_forget(args) -> int:
    from agent.engine.prune import forget

    policy = retention_from_args(args)
    grace = _grace(args) if args.prune else None
    repo = open_repository(args)
    _result, report = forget(repo, policy, dry_run=args.dry_run)
    forgotten = {s["id"] for s in report.forget} if args.dry_run else set()
    pruned = _prune(repo, args, grace, forgotten) if args.prune else None
    if args.json:
        emit_json({"forget": report.to_dict(), "prune": pruned.to_dict() if pruned else None})
        return EXIT_OK
    if not args.quiet:
        verb = "would forget" if args.dry_run else "forgot"
        for s in report.keep:
            print(f"keep   {s['id'][:8]}  {s['time']}  {', '.join(s['reasons'])}")
        for s in report.forget:
            print(f"forget {s['id'][:8]}  {s['time']}")
        print(f"{verb} {len(report.forget)} snapshot(s), kept {len(report.keep)}")
        if pruned is not None:
            print_prune(pruned)
    return EXIT_OK


def cmd_prune(args) -> int:
    grace = _grace(args)
    pruned = _prune(open_repository(args), args, grace)
    if args.json:
        emit_json(pruned.to_dict())
    elif not args.quiet:
        print_prune(pruned)
    return EXIT_OK


def _grace(args):
    from agent.engine.retention import parse_duration

    return parse_duration(args.grace)


def _prune(repo, args, grace, forgotten=frozenset()):
    from agent.engine.prune import prune

    report = prune(
        repo,
        grace=grace,
        dry_run=args.dry_run,
        assume_forgotten=forgotten,
        repack_above=args.repack_above,
    )
    for line in report.warnings:
        warn(line)
    return report


def print_prune(r) -> None:
    would = "would be " if r.dry_run else ""
    print(
        f"{r.snapshots} snapshot(s); {would}deleted {r.packs_deleted} pack(s), "
        f"{human_bytes(r.bytes_deleted)} (from {r.markers_swept} earlier marking(s)); "
        f"{r.packs_spared} spared"
    )
    print(
        f"{would}marked {r.packs_marked} unreferenced pack(s), {human_bytes(r.bytes_marked)}: "
        f"deleted by a prune after the grace period; {r.markers_pending} marking(s) pending"
    )
    if r.packs_to_repack:
        print(
            f"{'would repack' if r.dry_run else 'repacked'} {r.packs_to_repack} pack(s): "
            f"{human_bytes(r.bytes_to_repack)} copied into {r.packs_written} new pack(s), "
            "the old ones marked"
        )
    print(
        f"in use: {r.packs_kept} pack(s), {human_bytes(r.bytes_kept)} "
        f"({human_bytes(r.waste_bytes)} unreferenced inside them)"
    )


# --- parser --------------------------------------------------------------------------------
def common_parent() -> argparse.ArgumentParser:
    """Options every command accepts (before or after the command name)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    g.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    g.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="print less"
    )
    return p


def repo_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "-r",
        "--repo",
        default=os.environ.get("CAIRN_REPOSITORY"),
        metavar="REPO",
        help="repository: a local path or s3://BUCKET/PREFIX (default: $CAIRN_REPOSITORY)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="do not keep index and tree data of remote repositories in $CAIRN_CACHE_DIR "
        "(default ~/.cache/cairn)",
    )
    return p


def register_engine_commands(sub, parents) -> None:
    repo = [*parents, repo_parent()]

    p = sub.add_parser("init", parents=repo, help="create a repository")
    p.add_argument("--compression-level", type=int, default=3, help="zstd level (default 3)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("backup", parents=repo, help="back up paths into a new snapshot")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--tag", action="append", default=[], help="tag the snapshot (repeatable)")
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="skip matching names (*.tmp) or paths (/home/*/.cache); repeatable",
    )
    p.add_argument("--exclude-file", action="append", default=[], metavar="FILE")
    p.add_argument("--parent", metavar="SNAPSHOT", help="parent snapshot (default: latest)")
    p.add_argument("--force", action="store_true", help="read every file (no parent)")
    p.add_argument("--host", help="host name to record (default: this machine's)")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("snapshots", parents=repo, help="list snapshots")
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--host")
    p.set_defaults(func=cmd_snapshots)

    p = sub.add_parser("ls", parents=repo, help="list files in a snapshot")
    p.add_argument("snapshot", metavar="SNAPSHOT", help="id, unique id prefix, or latest")
    p.add_argument("path", nargs="?", metavar="PATH", help="only this path and below")
    p.add_argument("-l", "--long", action="store_true", help="mode, owner, size, time")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser(
        "restore",
        parents=repo,
        help="restore a snapshot under a target directory",
        description="Each file goes to TARGET + its original absolute path, "
        "D:\\restore\\C\\Users\\... for Windows paths (--target / restores in place; "
        "on Windows --target \\ too, to the original drive or share).",
    )
    p.add_argument("snapshot", metavar="SNAPSHOT", help="id, unique id prefix, or latest")
    p.add_argument("-t", "--target", required=True, metavar="DIR")
    p.add_argument(
        "-i",
        "--include",
        action="append",
        default=[],
        metavar="PATTERN",
        help="restore only matching names or paths (repeatable)",
    )
    p.add_argument(
        "--overwrite",
        choices=["never", "if-newer", "always"],
        default="never",
        help="existing files at the destination (default: never)",
    )
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("check", parents=repo, help="verify the repository")
    p.add_argument(
        "--read-data", action="store_true", help="also read, decrypt and verify all data"
    )
    p.add_argument(
        "--rebuild-index",
        action="store_true",
        help="first index packs no index object covers, from their own headers "
        "(recovers from damaged or lost index objects; only adds objects)",
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "forget",
        parents=repo,
        help="delete snapshots a retention policy does not keep",
        description="Snapshots are grouped by host and paths; periods are UTC. "
        "Only snapshot objects are deleted; --prune then reclaims their data.",
    )
    for period in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        p.add_argument(
            f"--keep-{period}",
            type=int,
            default=0,
            metavar="N",
            help=f"keep the {'N newest' if period == 'last' else 'newest of N ' + period} "
            "snapshot(s) (-1: unlimited)",
        )
    p.add_argument("--keep-within", metavar="DURATION", help="e.g. 30d, 2w, 6m, 1y, 12h")
    p.add_argument("--keep-tag", action="append", default=[], metavar="TAG")
    p.add_argument("--prune", action="store_true", help="prune afterwards")
    p.add_argument("--dry-run", action="store_true", help="only report what would happen")
    p.add_argument("--grace", default="2d", metavar="DURATION", help=argparse.SUPPRESS)
    p.add_argument("--repack-above", type=float, metavar="FRACTION", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser(
        "prune",
        parents=repo,
        help="reclaim unreferenced data (safe while backups run)",
        description="Deletes data marked unreferenced by a prune at least --grace ago, "
        "then marks what is unreferenced now. Backups may run at the same time if "
        "they finish within the grace period.",
    )
    p.add_argument("--dry-run", action="store_true", help="only report what would happen")
    p.add_argument(
        "--grace",
        default="2d",
        metavar="DURATION",
        help="age of a marking before its packs are deleted; longer than any backup run "
        "(default 2d; 0h only when no backup can be running)",
    )
    p.add_argument(
        "--repack-above",
        type=float,
        metavar="FRACTION",
        help="also repack packs more than FRACTION (0-1) unreferenced: copy their "
        "referenced blobs into new packs and mark the old ones (default: never)",
    )
    p.set_defaults(func=cmd_prune)


def build_parser() -> argparse.ArgumentParser:
    common = common_parent()
    parser = argparse.ArgumentParser(
        prog="cairn-agent",
        description="Cairn backup agent: deduplicated, compressed, encrypted backups.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"cairn-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_engine_commands(sub, [common])
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # the engine commands must work even if these break
            missing = isinstance(exc, ImportError) and exc.name and name.startswith(exc.name)
            if not missing and os.environ.get("CAIRN_DEBUG"):
                sys.stderr.write(f"cairn-agent: commands of {name} unavailable: {exc}\n")
            continue
        register = getattr(module, "register", None)
        if register is not None:
            register(sub, [common])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag in ("json", "debug", "quiet"):
        if not hasattr(args, flag):
            setattr(args, flag, False)
    from agent.engine.errors import EngineError
    from agent.engine.store import StoreError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        sys.stderr.write("cairn-agent: interrupted\n")
        return 130
    except BrokenPipeError:  # output piped into head & co.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except (CliError, EngineError, StoreError, OSError, ValueError) as exc:
        if args.debug:
            traceback.print_exc()
        message = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror:
            message = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        sys.stderr.write(f"cairn-agent: error: {message}\n")
        return EXIT_ERROR
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        sys.stderr.write(
            f"cairn-agent: internal error: {type(exc).__name__}: {exc} (run with --debug)\n"
        )
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
