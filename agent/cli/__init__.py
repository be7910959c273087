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
import importlib
import os
import sys
import traceback

from agent import __version__
from agent.cli import backup, browse, keykit, prune, restore
from agent.cli.common import EXIT_ERROR, CliError, common_parent, repo_parent
from agent.engine.errors import EngineError
from agent.engine.store import StoreError

#: modules with a ``register(subparsers, parents)`` function adding commands;
#: a module that is missing is skipped (the engine CLI works on its own)
COMMAND_MODULES = ["agent.daemon.cli"]
#: the engine's own commands, each module with ``register(subparsers, parents)``
ENGINE_COMMANDS = (backup, browse, restore, prune)


def register_engine_commands(sub, parents) -> None:
    repo = [*parents, repo_parent()]
    for module in ENGINE_COMMANDS:
        module.register(sub, repo)


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
    keykit.register(sub, [common])
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
