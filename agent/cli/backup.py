"""``cairn-agent init`` and ``backup``."""

from __future__ import annotations

import threading

from agent.cli.common import (
    EXIT_OK,
    EXIT_WARNINGS,
    CliError,
    credentials,
    emit_json,
    human_bytes,
    open_repository,
    open_store_arg,
    printable,
    progress_bar,
    warn,
)


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
    from agent.engine.backup import BackupOptions, run_backup

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
            options = BackupOptions(
                excludes=tuple(excludes),
                tags=tuple(args.tag),
                parent=parent,
                progress=callback,
                cancel=cancel,
                hostname=args.host,
            )
            result = run_backup(repo, args.paths, options)
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


def register(sub, repo) -> None:
    """Add the commands; ``repo``: the parent parsers of a command on a repository."""
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
