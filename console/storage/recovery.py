"""Disaster recovery of the console: the encrypted bundle and the recovery kit.

``backup()`` writes one bundle: a tar holding the database (PostgreSQL:
``pg_dump`` custom format; SQLite: the online backup API), the console CA
(``settings.PKI_DIR``), the organisation key and ``manifest.json`` (the
non-secret settings that matter: versions, applied migrations, storage
target, key fingerprints), sealed by the recovery passphrase
(agent/engine/sealed.py: Argon2id, AES-256-GCM). Nothing in it is in the
clear. It goes to a file or to the default storage target under
``<prefix>/_console/``.

``restore()`` brings a new, empty installation back from it: the database
restored, the CA and the key written where this installation's settings
say. A database with tables, or existing key files, is refused unless
``force``.

``recovery_kit()`` (console/storage/kit.py draws the PDF) seals the
organisation key alone by a passphrase, for an emergency restore with the
agent CLI.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection, connections
from django.db.migrations.recorder import MigrationRecorder

from agent import __version__ as agent_version
from agent.engine.sealed import SealError, check_passphrase, open_stream, seal_bytes, seal_stream
from agent.engine.store import open_store
from console.audit.services import Actor, record
from console.core import keys, pki
from console.storage import targets

BUNDLE_FORMAT = 1
STORAGE_FOLDER = "_console"
#: what the tar may hold, nothing else (a hostile bundle cannot write elsewhere)
MEMBERS = {"manifest.json", "database.pgdump", "database.sqlite3", "org.key"}
PKI_FILES = (pki.CA_KEY, pki.CA_CERT)
MAX_MEMBER = 64 << 30


class RecoveryError(Exception):
    """A backup or restore that cannot be done, said plainly."""


@dataclass(frozen=True)
class BackupResult:
    location: str
    size: int
    manifest: dict


def passphrase_from_settings() -> str:
    """The scheduled backup's passphrase: CAIRN_RECOVERY_PASSPHRASE_FILE."""
    path = settings.CAIRN_RECOVERY_PASSPHRASE_FILE
    if not path:
        raise RecoveryError("CAIRN_RECOVERY_PASSPHRASE_FILE is not set")
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise RecoveryError(
            f"cannot read CAIRN_RECOVERY_PASSPHRASE_FILE {path}: {exc.strerror}"
        ) from None


def _db() -> dict:
    return settings.DATABASES["default"]


def _is_postgres() -> bool:
    return "postgresql" in _db()["ENGINE"]


def _pg_env() -> tuple[list[str], dict]:
    db = _db()
    args = ["-h", str(db.get("HOST") or "127.0.0.1"), "-p", str(db.get("PORT") or 5432)]
    if db.get("USER"):
        args += ["-U", db["USER"]]
    env = {**os.environ}
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    return args, env


def _run(cmd: list[str], env: dict) -> None:
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    except FileNotFoundError:
        raise RecoveryError(
            f"{cmd[0]} not found: install the PostgreSQL client (postgresql-client)"
        ) from None
    if proc.returncode != 0:
        raise RecoveryError(f"{cmd[0]} failed: {proc.stderr.strip()[-2000:]}")


def _dump_database(folder: Path) -> str:
    if _is_postgres():
        args, env = _pg_env()
        out = folder / "database.pgdump"
        _run(
            [
                "pg_dump",
                *args,
                "-Fc",
                "--no-owner",
                "--no-privileges",
                "-f",
                str(out),
                _db()["NAME"],
            ],
            env,
        )
        return out.name
    out = folder / "database.sqlite3"
    src = sqlite3.connect(str(_db()["NAME"]))
    dst = sqlite3.connect(str(out))
    try:
        src.backup(dst)  # a consistent copy while the console keeps writing
    finally:
        dst.close()
        src.close()
    return out.name


def _fingerprints() -> dict:
    out = {}
    org = Path(settings.ORG_KEY_FILE)
    if org.exists():
        out["organisation_key"] = keys.org_key_fingerprint(keys._read_org_key(org))
    ca = Path(settings.PKI_DIR) / pki.CA_CERT
    if ca.exists():
        out["ca"] = pki.fingerprint(ca.read_bytes())
    return out


def manifest() -> dict:
    """The non-secret settings that matter to a restore."""
    t = targets.target()
    applied = {}
    for app, name in MigrationRecorder(connection).applied_migrations():
        applied[app] = max(applied.get(app, ""), name)
    return {
        "format": BUNDLE_FORMAT,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cairn_version": agent_version,
        "database": {
            "engine": "postgresql" if _is_postgres() else "sqlite",
            # pg_restore refuses dumps of a newer pg_dump: worth knowing first
            "server_version": getattr(connection, "pg_version", None) or sqlite3.sqlite_version,
        },
        "migrations": dict(sorted(applied.items())),
        "storage": {
            "kind": t.kind,
            "endpoint": t.endpoint,
            "public_endpoint": t.agent_endpoint if t.kind == "s3" else "",
            "bucket": t.bucket,
            "prefix": t.prefix,
        },
        "gateway_address": settings.GATEWAY_PUBLIC_ADDRESS,
        "organisation": settings.CAIRN_ORG,
        # which secrets key encrypted the credentials stored in the database;
        # the restoring installation must be given the same SECRET_KEY /
        # CAIRN_SECRETS_KEY (it is not in the bundle)
        "secrets_key_fingerprint": _secrets_fingerprint(),
        "fingerprints": _fingerprints(),
    }


def _secrets_fingerprint() -> str:
    material = settings.CAIRN_SECRETS_KEY or settings.SECRET_KEY
    return hashlib.sha256(b"cairn-secrets-check:" + material.encode()).hexdigest()[:16]


def _build_tar(folder: Path, tar_path: Path) -> dict:
    db_member = _dump_database(folder)
    info = manifest()
    (folder / "manifest.json").write_text(json.dumps(info, indent=1))
    with tarfile.open(tar_path, "w") as tar:
        tar.add(folder / "manifest.json", "manifest.json")
        tar.add(folder / db_member, db_member)
        org = Path(settings.ORG_KEY_FILE)
        if not org.exists():
            raise RecoveryError(f"the organisation key {org} does not exist: nothing to back up")
        tar.add(org, "org.key")
        for name in PKI_FILES:
            path = Path(settings.PKI_DIR) / name
            if not path.exists():
                raise RecoveryError(f"the console CA file {path} does not exist")
            tar.add(path, f"pki/{name}")
    return info


def _storage_store():
    t = targets.target()
    if t.kind == "s3":
        url = (
            f"s3://{t.bucket}/{t.prefix}/{STORAGE_FOLDER}"
            if t.prefix
            else f"s3://{t.bucket}/{STORAGE_FOLDER}"
        )
        return open_store(
            url,
            endpoint=t.endpoint,
            access_key=t.access_key,
            secret_key=t.secret_key,
            region=t.region,
        ), url
    folder = Path(t.local_dir) / (t.prefix or "") / STORAGE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return open_store(str(folder)), folder.as_uri()


def backup(
    actor: Actor, passphrase: str, *, output: str | None = None, keep: int = 0
) -> BackupResult:
    """Write a sealed bundle to ``output`` (a new file) or, without it, to the
    storage target (``keep`` > 0: only that many newest bundles kept there).

    The audit event is written before the database is dumped, so the bundle
    holds the record of its own making (a restored console shows which
    backup it came from); a backup that then fails is recorded as
    ``console.backup.failed``."""
    check_passphrase(passphrase)
    if output and Path(output).exists():
        raise RecoveryError(f"{output} exists: give a new file name")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    if output:
        location, store, name = str(Path(output).resolve()), None, ""
    else:
        store, url = _storage_store()
        name = f"console-{stamp}.cairnbak"
        location = f"{url}/{name}"
    record(
        actor,
        "console.backup",
        target_type="console",
        target_repr=location,
        after={"location": location, "fingerprints": _fingerprints()},
    )
    try:
        with tempfile.TemporaryDirectory(prefix="cairn-dr-") as tmp:
            folder = Path(tmp)
            os.chmod(folder, 0o700)
            tar_path = folder / "bundle.tar"
            info = _build_tar(folder, tar_path)
            sealed = folder / "bundle.sealed"
            with tar_path.open("rb") as src, sealed.open("wb") as dst:
                seal_stream(
                    src,
                    dst,
                    passphrase,
                    {"what": "cairn console bundle", "created": info["created"]},
                )
            size = sealed.stat().st_size
            if store is None:
                fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out, sealed.open("rb") as src:
                    shutil.copyfileobj(src, out)
            else:
                store.put(name, sealed.read_bytes())
                if keep > 0:
                    old = sorted(k for k in store.list("") if k.endswith(".cairnbak"))[:-keep]
                    for k in old:
                        store.delete(k)
    except Exception as exc:
        record(
            actor,
            "console.backup.failed",
            target_type="console",
            target_repr=location,
            after={"location": location, "error": str(exc)[:500]},
        )
        raise
    finally:
        if store is not None:
            store.close()
    return BackupResult(location, size, info)


def fetch(location: str, dest: Path) -> None:
    """A bundle from a file or from the storage target (its name, as
    ``backup`` printed it, or ``latest``)."""
    if location.startswith("file://"):
        location = location[len("file://") :]
    if "://" not in location and location != "latest":
        path = Path(location)
        if not path.is_file():
            raise RecoveryError(f"{path}: no such bundle file")
        shutil.copyfile(path, dest)
        return
    store, url = _storage_store()
    try:
        name = location.rsplit("/", 1)[-1]
        if name == "latest":
            names = sorted(k for k in store.list("") if k.endswith(".cairnbak"))
            if not names:
                raise RecoveryError(f"no console bundle in {url}")
            name = names[-1]
        dest.write_bytes(store.get(name))
    finally:
        store.close()


def installation_contents() -> list[str]:
    """What a restore would overwrite here (empty: a new installation)."""
    found = []
    tables = connection.introspection.table_names()
    if tables:
        found.append(f"the database has {len(tables)} tables")
    if Path(settings.ORG_KEY_FILE).exists():
        found.append(f"the organisation key {settings.ORG_KEY_FILE} exists")
    if (Path(settings.PKI_DIR) / pki.CA_CERT).exists():
        found.append(f"a console CA exists in {settings.PKI_DIR}")
    return found


def _safe_members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    members = {}
    allowed = MEMBERS | {f"pki/{n}" for n in PKI_FILES}
    for m in tar.getmembers():
        if m.name not in allowed or not m.isfile() or m.size > MAX_MEMBER:
            raise RecoveryError(f"the bundle holds an unexpected entry {m.name!r}")
        members[m.name] = m
    for need in ("manifest.json", "org.key", *(f"pki/{n}" for n in PKI_FILES)):
        if need not in members:
            raise RecoveryError(f"the bundle has no {need}")
    return members


def _drop_everything() -> None:
    with connection.cursor() as cur:
        if _is_postgres():
            cur.execute("DROP SCHEMA public CASCADE")
            cur.execute("CREATE SCHEMA public")
        else:
            for table in connection.introspection.table_names():
                cur.execute(f'DROP TABLE IF EXISTS "{table}"')


def _restore_database(folder: Path, members: dict) -> None:
    if _is_postgres():
        if "database.pgdump" not in members:
            raise RecoveryError(
                "the bundle holds a SQLite database; this installation uses PostgreSQL"
            )
        args, env = _pg_env()
        connections.close_all()
        _run(
            [
                "pg_restore",
                *args,
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "-d",
                _db()["NAME"],
                str(folder / "database.pgdump"),
            ],
            env,
        )
        return
    if "database.sqlite3" not in members:
        raise RecoveryError("the bundle holds a PostgreSQL dump; this installation uses SQLite")
    connections.close_all()
    src = sqlite3.connect(str(folder / "database.sqlite3"))
    dst = sqlite3.connect(str(_db()["NAME"]))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".restore")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def restore(actor: Actor, bundle: Path, passphrase: str, *, force: bool = False) -> dict:
    """Bring this installation back from ``bundle``; returns its manifest."""
    found = installation_contents()
    if found and not force:
        raise RecoveryError(
            "this installation is not empty (" + "; ".join(found) + "): restore into a new, "
            "empty database and state directory, or pass --force to replace everything"
        )
    with tempfile.TemporaryDirectory(prefix="cairn-dr-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o700)
        tar_path = folder / "bundle.tar"
        try:
            with bundle.open("rb") as src, tar_path.open("wb") as dst:
                open_stream(src, dst, passphrase)
        except SealError as exc:
            raise RecoveryError(str(exc)) from None
        with tarfile.open(tar_path, "r:") as tar:
            members = _safe_members(tar)
            for name in members:
                target = folder / "x" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(members[name]) as f, target.open("wb") as out:
                    shutil.copyfileobj(f, out)
        x = folder / "x"
        info = json.loads((x / "manifest.json").read_text())
        if not isinstance(info, dict) or info.get("format") != BUNDLE_FORMAT:
            raise RecoveryError("the bundle's manifest is of an unknown format")
        org = (x / "org.key").read_bytes()
        fp = (info.get("fingerprints") or {}).get("organisation_key")
        org_raw = bytes.fromhex(org.decode()) if len(org) == 64 else org
        if len(org_raw) != keys.ORG_KEY_SIZE or keys.org_key_fingerprint(org_raw) != fp:
            raise RecoveryError("the bundle's organisation key does not match its manifest")
        if force:
            _drop_everything()
        _restore_database(x, members)
        _write_secret(Path(settings.ORG_KEY_FILE), org)
        pki_dir = Path(settings.PKI_DIR)
        pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in PKI_FILES:
            _write_secret(pki_dir / name, (x / "pki" / name).read_bytes())
        # the gateway's own certificate is re-issued from the restored CA
        for name in (pki.SERVER_KEY, pki.SERVER_CERT):
            (pki_dir / name).unlink(missing_ok=True)
    connections.close_all()
    record(
        actor,
        "console.restore",
        target_type="console",
        target_repr=str(bundle),
        after={
            "bundle_created": info.get("created"),
            "fingerprints": info.get("fingerprints"),
            "forced": force,
            "secrets_key_matches": info.get("secrets_key_fingerprint") == _secrets_fingerprint(),
        },
    )
    return info


def secrets_key_matches(info: dict) -> bool:
    return info.get("secrets_key_fingerprint") == _secrets_fingerprint()


def sealed_org_key(passphrase: str) -> tuple[bytes, str]:
    """The organisation key sealed by ``passphrase`` and its fingerprint."""
    key = keys.org_key()
    fp = keys.org_key_fingerprint(key)
    return seal_bytes(key, passphrase, {"what": "organisation key", "fingerprint": fp}), fp
