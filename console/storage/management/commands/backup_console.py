"""manage.py backup_console: the console's sealed disaster-recovery bundle
(database, CA, organisation key, manifest) to a file or the storage target."""

import getpass

from django.core.management.base import BaseCommand, CommandError

from console.audit.services import SYSTEM
from console.storage import recovery
from console.storage.management.commands import _passphrase


class Command(BaseCommand):
    help = "Write an encrypted bundle of the console (database, CA, organisation key, settings)."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="a new file (default: the storage target)")
        parser.add_argument(
            "--keep", type=int, default=0, help="in the storage target: keep only this many newest"
        )
        _passphrase.add_argument(parser)

    def handle(self, *args, output=None, keep=0, **options):
        secret = _passphrase.passphrase(options, confirm=True)
        actor = SYSTEM
        try:
            result = recovery.backup(actor, secret, output=output, keep=keep)
        except (recovery.RecoveryError, OSError) as exc:
            raise CommandError(str(exc)) from None
        fp = result.manifest["fingerprints"]
        self.stdout.write(
            f"console bundle written to {result.location} ({result.size} bytes) by "
            f"{getpass.getuser()}; organisation key {fp.get('organisation_key')}, "
            f"CA {fp.get('ca', '')[:16]}. Recorded in the audit log as console.backup."
        )
