"""The console's two long-lived secrets: the organisation key and the CA.

* The **organisation key** (``settings.ORG_KEY_FILE``, 32 random bytes, mode
  0600) wraps every device repository's data keys (docs/security.md).
* The **console CA** (``settings.PKI_DIR``, console/core/pki.py) signs
  every device certificate.

In development both are created on first use. In production a missing one
is an error, never a side effect: a console that silently generated a new
organisation key would wrap new repositories with a key nobody backed up,
and a new CA would orphan every enrolled device. ``init_keys`` (the
``manage.py init_keys`` command) creates them once, refuses to replace
either, and records the act in the audit log.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from console.audit.services import Actor, record
from console.core import pki

ORG_KEY_SIZE = 32
INIT_HINT = "create it once, explicitly: python manage.py init_keys (docs/operations.md)"


class KeysMissing(ImproperlyConfigured):
    """A key the console needs does not exist (production never creates one)."""


class KeysExist(Exception):
    """init_keys found nothing to create: existing keys are never replaced."""


@dataclass(frozen=True)
class KeyFile:
    what: str
    path: Path
    fingerprint: str
    created: bool


def org_key_fingerprint(data: bytes) -> str:
    """As shown on the storage page (console/storage/services.py)."""
    return hashlib.sha256(data).hexdigest()[:16]


def _read_org_key(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) == 2 * ORG_KEY_SIZE:  # hex-encoded
        data = bytes.fromhex(data.decode())
    if len(data) != ORG_KEY_SIZE:
        raise ImproperlyConfigured(f"{path}: the organisation key must be {ORG_KEY_SIZE} bytes")
    return data


def _create_org_key(path: Path) -> bool:
    """Write a new key with O_EXCL (never over an existing file). False when
    another process created it first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(ORG_KEY_SIZE))
    return True


def org_key() -> bytes:
    """The organisation key; created on first use in development only."""
    path = Path(settings.ORG_KEY_FILE)
    if not path.exists():
        if settings.PRODUCTION:
            raise KeysMissing(f"the organisation key {path} does not exist: {INIT_HINT}")
        _create_org_key(path)
    return _read_org_key(path)


def missing_keys() -> list[str]:
    """Human descriptions of the keys that do not exist (empty: all there)."""
    missing = []
    if not Path(settings.ORG_KEY_FILE).exists():
        missing.append(f"organisation key {settings.ORG_KEY_FILE}")
    ca_cert = Path(settings.PKI_DIR) / pki.CA_CERT
    if not ca_cert.exists():
        missing.append(f"console CA {ca_cert}")
    return missing


def init_keys(actor: Actor, org: str = "Cairn", operator: str = "") -> list[KeyFile]:
    """Create the organisation key and the console CA where they do not exist
    yet; never touch existing ones. ``KeysExist`` when both already exist.
    The creation is recorded in the audit log (paths and fingerprints, never
    key material), with ``operator`` (who ran it, e.g. the OS user)."""
    org_path = Path(settings.ORG_KEY_FILE)
    ca_dir = Path(settings.PKI_DIR)
    if not missing_keys():
        raise KeysExist(
            f"the organisation key {org_path} and the console CA in {ca_dir} already exist; "
            "they are never replaced (a new key would orphan every repository and device)"
        )
    made_org = not org_path.exists() and _create_org_key(org_path)
    org_file = KeyFile(
        "organisation key", org_path, org_key_fingerprint(_read_org_key(org_path)), made_org
    )
    made_ca = not (ca_dir / pki.CA_CERT).exists()
    ca = pki.create_ca(ca_dir, org) if made_ca else pki.ensure_ca(ca_dir, org, create=False)
    ca_file = KeyFile("console CA", ca_dir / pki.CA_CERT, ca.fingerprint, made_ca)
    files = [org_file, ca_file]
    record(
        actor,
        "keys.init",
        target_type="keys",
        target_repr="organisation key and console CA",
        after={
            "operator": operator,
            **{
                f.what: {"path": str(f.path), "fingerprint": f.fingerprint, "created": f.created}
                for f in files
            },
        },
    )
    return files
