"""manage.py init_installation: everything a new installation needs before
its services start, in order, and safe to run again (each step does only
what is missing). The compose file's ``init`` service and the systemd
``cairn-init.service`` run exactly this; upgrades run it too (migrations).

1. ``migrate`` (online: new migrations only add; docs/operations.md, "Upgrade")
2. ``collectstatic`` with the configured storage (whitenoise's manifest in
   production) when the manifest is missing; the image has it from its build
3. the organisation key and the console CA (``init_keys``) when missing
4. the bucket: created, versioned, old versions expired (console/storage/buckets.py)
5. the first Admin from ``CAIRN_ADMIN_USERNAME`` / ``CAIRN_ADMIN_PASSWORD``,
   or ``--admin NAME`` asking for the password, while no Admin exists

It lives in the storage app because storage is the one domain app allowed to
use both the keys (core) and the accounts; it holds no logic of its own.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from console.accounts.first_admin import admin_exists, create_first_admin
from console.audit.services import SYSTEM
from console.core import keys, pki
from console.storage.buckets import BucketError, prepare_bucket


class Command(BaseCommand):
    help = (
        "Prepare an installation (migrate, static files, keys, bucket, first Admin); re-runnable."
    )
    requires_system_checks: list = []  # the deploy checks report what this creates

    def add_arguments(self, parser):
        parser.add_argument("--org", default="Cairn", help="organisation name in the CA subject")
        parser.add_argument("--admin", help="create this first Admin, asking for the password")
        parser.add_argument("--no-bucket", action="store_true", help="the bucket exists: skip it")

    def handle(self, *args, org, admin, no_bucket, **options):
        self._step("database", self._migrate)
        self._step("static files", self._static)
        self._step("keys", lambda: self._keys(org))
        if no_bucket:
            self.stdout.write("bucket: skipped (--no-bucket)")
        else:
            self._step("bucket", self._bucket)
        self._step("first admin", lambda: self._admin(admin))
        self.stdout.write("Installation ready.")

    def _step(self, name, fn):
        try:
            message = fn()
        except (BucketError, keys.KeysMissing, pki.PKIError, ValidationError, OSError) as exc:
            detail = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            raise CommandError(f"{name}: {detail}") from None
        self.stdout.write(f"{name}: {message}")

    def _migrate(self) -> str:
        call_command("migrate", interactive=False, verbosity=0)
        return "migrated"

    def _static(self) -> str:
        manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
        if not settings.PRODUCTION:
            return "development serves them from the apps (nothing to collect)"
        if manifest.exists():
            return f"manifest {manifest} present"
        call_command("collectstatic", interactive=False, verbosity=0)
        return f"collected into {settings.STATIC_ROOT}"

    def _keys(self, org: str) -> str:
        if not keys.missing_keys():
            ca = pki.ensure_ca(create=False)
            org = keys.org_key_fingerprint(keys.org_key())
            return (
                f"organisation key (SHA-256 {org}) and console CA (SHA-256 {ca.fingerprint}, "
                "what agents pin with --ca-fingerprint) present, never replaced"
            )
        files = keys.init_keys(SYSTEM, org=org, operator=getpass.getuser())
        return (
            "; ".join(
                f"{f.what} {f.path} {'created' if f.created else 'present'}, SHA-256 {f.fingerprint}"
                for f in files
            )
            + " - back these files up now"
        )

    def _bucket(self) -> str:
        s = prepare_bucket()
        return (
            f"{s.bucket} {'created' if s.created else 'present'}, versioning {s.versioning}, "
            f"old versions kept {s.retain_days} days, Object Lock {'on' if s.object_lock else 'off'}"
        )

    def _admin(self, name: str | None) -> str:
        if admin_exists():
            return "an Admin exists"
        username = name or os.environ.get("CAIRN_ADMIN_USERNAME", "")
        password = os.environ.get("CAIRN_ADMIN_PASSWORD", "") if not name else ""
        if not username:
            return (
                "none yet: run `manage.py init_installation --admin NAME` "
                "(or set CAIRN_ADMIN_USERNAME and CAIRN_ADMIN_PASSWORD)"
            )
        if not password:
            password = getpass.getpass(f"Password for {username}: ")
            if password != getpass.getpass("Again: "):
                raise CommandError("first admin: the passwords differ")
        user = create_first_admin(username, password, os.environ.get("CAIRN_ADMIN_EMAIL", ""))
        return f"{user.username} created (role Admin)"
