"""The daemon's subcommands: ``enroll``, ``run``, ``status``, ``files``.

``agent/cli.py`` (the engine's CLI) adds them with ``add_commands``; this
module also runs on its own: ``python -m agent.daemon enroll|run|status``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from agent.cli import files
from agent.daemon.home import AgentHome


def register(subparsers, parents=()) -> None:
    """Hook for agent/cli.py (COMMAND_MODULES)."""
    add_commands(subparsers, list(parents))


def add_commands(subparsers, parents=None) -> None:
    parents = parents or []
    p = subparsers.add_parser(
        "enroll", parents=parents, help="enroll this PC with a console (one-time token)"
    )
    p.add_argument("--server", required=True, help="gateway enrollment address HOST:PORT")
    p.add_argument("--token", required=True, help="enrollment token from the console")
    p.add_argument("--ca-cert", help="the console's CA certificate (PEM) to trust")
    p.add_argument("--ca-fingerprint", help="expected SHA-256 of the console's CA certificate")
    p.add_argument("--server-name", default="", help="TLS name to expect (if not the host)")
    p.add_argument("--home", help="agent home (default: CAIRN_AGENT_HOME)")
    p.add_argument("--force", action="store_true", help="enroll again, replacing the identity")
    p.set_defaults(func=cmd_enroll)

    p = subparsers.add_parser(
        "run", parents=parents, help="run the agent (connect, schedule, back up)"
    )
    p.add_argument("--home", help="agent home (default: CAIRN_AGENT_HOME)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser(
        "status", parents=parents, help="connection, policy, last/next backup, progress"
    )
    p.add_argument("--home", help="agent home (default: CAIRN_AGENT_HOME)")
    if not parents:  # agent/cli.py's common options already carry --json
        p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    # Self-service restore through the running agent (agent/cli/files.py).
    files.register(subparsers, parents)


def cmd_enroll(args) -> int:
    from agent.daemon.enroll import EnrollError, enroll

    home = AgentHome(args.home)
    if home.enrolled() and not args.force:
        print(
            f"already enrolled as {home.load_identity().device_id} (use --force to replace)",
            file=sys.stderr,
        )
        return 1
    try:
        identity = enroll(
            home,
            args.server,
            args.token,
            ca_cert_file=args.ca_cert,
            ca_fingerprint_expected=args.ca_fingerprint,
            server_name=args.server_name,
        )
    except (EnrollError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"enrolled as device {identity.device_id}; gateway {identity.gateway_address}")
    return 0


def cmd_run(args) -> int:
    from agent.daemon.daemon import run

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    home = AgentHome(args.home)
    if not home.enrolled():
        print(f"error: not enrolled (home {home.path}); run `agent enroll` first", file=sys.stderr)
        return 2
    return run(home)


def cmd_status(args) -> int:
    from agent.daemon.status import format_status

    home = AgentHome(args.home)
    if getattr(args, "json", False):
        try:
            data = json.loads(home.status_file.read_text())
        except (OSError, ValueError):
            data = {"connection": "unknown", "enrolled": home.enrolled()}
        print(json.dumps(data, indent=1))
        return 0
    print(format_status(home))
    return 0 if home.enrolled() else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="cairn-agent")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(argv)
    return args.func(args)
