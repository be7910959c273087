"""manage.py init_keys: create the organisation key and the console CA, once.

In production this is the only way they come to exist (docs/operations.md):
run it once when installing, then back the files up.
"""

import getpass

from django.core.management.base import BaseCommand, CommandError

from console.audit.services import SYSTEM
from console.core import keys, pki


class Command(BaseCommand):
    help = "Create the organisation key and the console CA where missing; never replace them."
    # The deploy checks report the very keys this command creates.
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("--org", default="Cairn", help="organisation name in the CA subject")

    def handle(self, *args, org, **options):
        try:
            files = keys.init_keys(SYSTEM, org=org, operator=getpass.getuser())
        except keys.KeysExist as exc:
            raise CommandError(str(exc)) from None
        except pki.PKIError as exc:
            raise CommandError(f"the console CA was not created: {exc}") from None
        for f in files:
            state = "created" if f.created else "already there, left as it was"
            self.stdout.write(f"{f.what}: {f.path} ({state}), SHA-256 fingerprint {f.fingerprint}")
        self.stdout.write(
            "Recorded in the audit log as keys.init. "
            "Back these files up now: without the organisation key no repository can be "
            "restored without its PC."
        )
