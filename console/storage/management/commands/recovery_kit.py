"""manage.py recovery_kit --output kit.pdf: the printable organisation-key
recovery kit (console/storage/kit.py)."""

import os

from django.core.management.base import BaseCommand, CommandError

from agent.engine.sealed import SealError
from console.audit.services import SYSTEM
from console.storage import kit
from console.storage.management.commands import _passphrase


class Command(BaseCommand):
    help = "Write the organisation key, wrapped by a recovery passphrase, as a printable PDF."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", required=True, help="the PDF to write (a new file)")
        _passphrase.add_argument(parser)

    def handle(self, *args, output, **options):
        secret = _passphrase.passphrase(options, confirm=True)
        try:
            pdf, fingerprint = kit.recovery_kit(SYSTEM, secret)
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise CommandError(f"{output} exists: give a new file name") from None
        except SealError as exc:
            raise CommandError(str(exc)) from None
        with os.fdopen(fd, "wb") as f:
            f.write(pdf)
        self.stdout.write(
            f"recovery kit for organisation key {fingerprint} written to {output}. Print it, "
            "keep it in a safe, keep the passphrase elsewhere, then delete the file. "
            "Recorded in the audit log as keys.recovery_kit."
        )
