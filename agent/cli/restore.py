"""``cairn-agent restore`` and ``check``."""

from __future__ import annotations

import sys

from agent.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    emit_json,
    human_bytes,
    open_repository,
    printable,
    progress_bar,
    warn,
)


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


def register(sub, repo) -> None:
    """Add the commands; ``repo``: the parent parsers of a command on a repository."""
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
