"""What every command of ``cairn-agent`` shares: exit codes, keys and the
repository from the environment, output helpers, the common options."""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import json
import os
import sys
from contextlib import contextmanager

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_WARNINGS = 3


class CliError(Exception):
    """A user-facing error: printed as one line."""


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
