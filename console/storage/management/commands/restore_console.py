"""manage.py restore_console: a new, empty installation back from a bundle."""

import tempfile
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from console.audit.services import SYSTEM
from console.storage import recovery
from console.storage.management.commands import _passphrase


class Command(BaseCommand):
    help = "Restore the console (database, CA, organisation key) from a backup_console bundle."
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument(
            "bundle",
            help="a bundle file, its storage URL as backup_console printed it, or 'latest'",
        )
        parser.add_argument(
            "--force", action="store_true", help="replace a non-empty installation's data and keys"
        )
        _passphrase.add_argument(parser)

    def handle(self, *args, bundle, force=False, **options):
        secret = _passphrase.passphrase(options, confirm=False)
        with tempfile.TemporaryDirectory(prefix="cairn-restore-") as tmp:
            local = Path(tmp) / "bundle"
            try:
                recovery.fetch(bundle, local)
                info = recovery.restore(SYSTEM, local, secret, force=force)
            except (recovery.RecoveryError, OSError) as exc:
                raise CommandError(str(exc)) from None
        # the code may be newer than the bundle: bring the schema forward
        call_command("migrate", interactive=False, verbosity=0)
        fp = info.get("fingerprints", {})
        self.stdout.write(
            f"restored the console as of {info.get('created')} (Cairn {info.get('cairn_version')}); "
            f"organisation key {fp.get('organisation_key')}, CA {str(fp.get('ca', ''))[:16]}. "
            "Recorded in the audit log as console.restore. Start the gateway, console and workers."
        )
        if not recovery.secrets_key_matches(info):
            self.stderr.write(
                "warning: SECRET_KEY / CAIRN_SECRETS_KEY differ from the backed-up installation's: "
                "storage credentials saved in the console cannot be read until they are the same"
            )
