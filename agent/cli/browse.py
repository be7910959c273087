"""``cairn-agent snapshots`` and ``ls``: what a repository holds."""

from __future__ import annotations

import base64
import os
import stat as statmod
import time

from agent.cli.common import (
    EXIT_OK,
    CliError,
    emit_json,
    human_bytes,
    open_repository,
    printable,
    warn,
)


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


def register(sub, repo) -> None:
    """Add the commands; ``repo``: the parent parsers of a command on a repository."""
    p = sub.add_parser("snapshots", parents=repo, help="list snapshots")
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--host")
    p.set_defaults(func=cmd_snapshots)

    p = sub.add_parser("ls", parents=repo, help="list files in a snapshot")
    p.add_argument("snapshot", metavar="SNAPSHOT", help="id, unique id prefix, or latest")
    p.add_argument("path", nargs="?", metavar="PATH", help="only this path and below")
    p.add_argument("-l", "--long", action="store_true", help="mode, owner, size, time")
    p.set_defaults(func=cmd_ls)
