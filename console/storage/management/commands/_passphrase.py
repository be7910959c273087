"""How the disaster-recovery commands get the recovery passphrase."""

import getpass
import os
import sys
from pathlib import Path

from django.core.management.base import CommandError

from agent.engine.sealed import SealError, check_passphrase
from console.storage import recovery


def add_argument(parser) -> None:
    parser.add_argument(
        "--passphrase-file",
        help="file holding the recovery passphrase (else CAIRN_RECOVERY_PASSPHRASE, "
        "CAIRN_RECOVERY_PASSPHRASE_FILE, or asked on a terminal)",
    )


def passphrase(options, *, confirm: bool) -> str:
    try:
        if options.get("passphrase_file"):
            value = Path(options["passphrase_file"]).read_text(encoding="utf-8").rstrip("\r\n")
        elif "CAIRN_RECOVERY_PASSPHRASE" in os.environ:
            value = os.environ["CAIRN_RECOVERY_PASSPHRASE"]
        elif sys.stdin.isatty():
            value = getpass.getpass("recovery passphrase: ")
            if confirm and getpass.getpass("repeat it: ") != value:
                raise CommandError("the passphrases do not match")
        else:
            value = recovery.passphrase_from_settings()
        if confirm:
            check_passphrase(value)
    except OSError as exc:
        raise CommandError(f"cannot read the passphrase file: {exc.strerror}") from None
    except (SealError, recovery.RecoveryError) as exc:
        raise CommandError(str(exc)) from None
    return value
