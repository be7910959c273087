"""``cairn-agent unwrap-key``: the organisation key back from the recovery
kit, without the console.

The kit (``manage.py recovery_kit``) prints the key sealed by the recovery
passphrase (agent/engine/sealed.py) as an armoured text block. Give this
command that block (a text file: typed back in, or ``pdftotext kit.pdf``) and
the passphrase (asked on a terminal, or ``CAIRN_RECOVERY_PASSPHRASE``); it
writes the key as 64 hex characters to ``--output`` (mode 0600, never over an
existing file) and prints its fingerprint to compare with the kit's. Then
``CAIRN_KEY_FILE=<that file> cairn-agent restore --repo s3://…`` opens any
device repository of the organisation.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import sys

from agent.cli.common import EXIT_OK, CliError, emit_json
from agent.engine.sealed import SealError, dearmour, open_bytes

MAX_KIT_TEXT = 1 << 20


def _passphrase() -> str:
    value = os.environ.get("CAIRN_RECOVERY_PASSPHRASE")
    if value is not None:
        return value
    if sys.stdin.isatty() and sys.stderr.isatty():
        return getpass.getpass("recovery passphrase: ")
    raise CliError("no recovery passphrase: set CAIRN_RECOVERY_PASSPHRASE or run on a terminal")


def cmd_unwrap_key(args) -> int:
    try:
        if args.kit == "-":
            text = sys.stdin.read(MAX_KIT_TEXT)
        else:
            with open(args.kit, encoding="utf-8", errors="replace") as f:
                text = f.read(MAX_KIT_TEXT)
    except OSError as exc:
        raise CliError(f"cannot read {args.kit}: {exc.strerror or exc}") from None
    try:
        key, header = open_bytes(dearmour(text), _passphrase())
    except SealError as exc:
        raise CliError(str(exc)) from None
    info = header.get("info") if isinstance(header.get("info"), dict) else {}
    fingerprint = hashlib.sha256(key).hexdigest()[:16]
    if len(key) != 32 or info.get("what") != "organisation key":
        raise CliError("the sealed block does not hold an organisation key")
    if info.get("fingerprint") != fingerprint:
        raise CliError("the unwrapped key does not match the fingerprint sealed with it")
    try:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(f"{args.output} exists: give a new file name") from None
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    if args.json:
        emit_json({"output": args.output, "fingerprint": fingerprint})
    elif not args.quiet:
        print(f"organisation key {fingerprint} written to {args.output}")
    return EXIT_OK


def register(sub, parents) -> None:
    p = sub.add_parser(
        "unwrap-key",
        parents=parents,
        help="the organisation key from the recovery kit's sealed block",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("kit", help="text file holding the kit's sealed block ('-': standard input)")
    p.add_argument("--output", "-o", required=True, help="where to write the key (a new file)")
    p.set_defaults(func=cmd_unwrap_key)
