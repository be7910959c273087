"""``cairn-agent forget`` and ``prune``: retention and reclaiming space."""

from __future__ import annotations

import argparse

from agent.cli.common import (
    EXIT_OK,
    CliError,
    emit_json,
    human_bytes,
    open_repository,
    warn,
)


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
    """Plan, then (unless --dry-run) execute: a dry run prints the plan."""
    from agent.engine.prune import plan_prune

    plan = plan_prune(repo, grace=grace, assume_forgotten=forgotten, repack_above=args.repack_above)
    report = plan.report if args.dry_run else plan.execute()
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


def register(sub, repo) -> None:
    """Add the commands; ``repo``: the parent parsers of a command on a repository."""
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
