"""The sealed format (agent/engine/sealed.py) and the console bundle on the
SQLite configuration (the PostgreSQL one, on a running installation, is
tests/prod/test_console_recovery.py)."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.engine import sealed
from tests.gateway.harness import ROOT

PASS = "a recovery passphrase"


def test_roundtrip_many_chunks_and_empty():
    data = os.urandom(sealed.CHUNK * 2 + 123)
    blob = sealed.seal_bytes(data, PASS, {"what": "x"})
    assert data not in blob
    out, header = sealed.open_bytes(blob, PASS)
    assert out == data and header["info"] == {"what": "x"} and header["kdf"] == "argon2id"
    assert sealed.open_bytes(sealed.seal_bytes(b"", PASS), PASS)[0] == b""


def test_wrong_passphrase_tampering_truncation_reordering_refused():
    data = os.urandom(sealed.CHUNK * 2 + 10)
    blob = sealed.seal_bytes(data, PASS)
    with pytest.raises(sealed.SealError, match="wrong passphrase"):
        sealed.open_bytes(blob, "another passphrase")
    flipped = bytearray(blob)
    flipped[-20] ^= 1
    with pytest.raises(sealed.SealError, match="damaged"):
        sealed.open_bytes(bytes(flipped), PASS)
    # the header is authenticated: a changed parameter fails the first chunk
    head_end = blob.index(b"\n", len(sealed.MAGIC)) + 1
    header = json.loads(blob[len(sealed.MAGIC) : head_end])
    header["info"] = {"what": "changed"}
    forged = sealed.MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + blob[head_end:]
    with pytest.raises(sealed.SealError):
        sealed.open_bytes(forged, PASS)
    # a bundle cut after a whole chunk: no final chunk
    first = int.from_bytes(blob[head_end : head_end + 4], "big")
    with pytest.raises(sealed.SealError, match="truncated"):
        sealed.open_bytes(blob[: head_end + 4 + first], PASS)
    # chunks swapped
    body = blob[head_end:]
    c1 = body[: 4 + first]
    c2 = body[4 + first : 8 + 2 * first]
    with pytest.raises(sealed.SealError):
        sealed.open_bytes(blob[:head_end] + c2 + c1 + body[8 + 2 * first :], PASS)
    with pytest.raises(sealed.SealError, match="magic"):
        sealed.open_bytes(b"PK\x03\x04" + blob, PASS)


def test_hostile_kdf_parameters_are_bounded():
    blob = sealed.seal_bytes(b"k" * 32, PASS)
    head_end = blob.index(b"\n", len(sealed.MAGIC)) + 1
    header = json.loads(blob[len(sealed.MAGIC) : head_end])
    header["memory_kib"] = 64 << 20  # 64 GiB
    hostile = sealed.MAGIC + json.dumps(header).encode() + b"\n" + blob[head_end:]
    with pytest.raises(sealed.SealError, match="out of bounds"):
        sealed.open_bytes(hostile, PASS)


def test_short_passphrase_refused_and_armour_survives_page_text():
    with pytest.raises(sealed.SealError, match="at least 12"):
        sealed.seal_bytes(b"x", "short")
    blob = sealed.seal_bytes(b"k" * 32, PASS)
    page = "Some heading\n\n" + sealed.armour(blob).replace("\n", "\n\n   ") + "\f footer"
    assert sealed.dearmour(page) == blob
    with pytest.raises(sealed.SealError, match="no '-----BEGIN"):
        sealed.dearmour("nothing here")


def _manage(env, *args, check=True):
    res = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    if check:
        assert res.returncode == 0, res.stdout + res.stderr
    return res


def _env(var: Path) -> dict:
    var.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "S3_", "CAIRN_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="console.settings",
        DATABASE_URL=f"sqlite:///{var / 'cairn.sqlite3'}",
        CAIRN_VAR_DIR=str(var),
        CAIRN_RECOVERY_PASSPHRASE=PASS,
        PYTHONPATH=str(ROOT),
    )
    return env


MAKE_DATA = "from console.fleet.models import DeviceGroup as Group; Group.objects.create(name='kept-through-restore')"
READ_DATA = (
    "import json; from console.fleet.models import DeviceGroup as Group;"
    " from console.audit.models import AuditEvent;"
    "print(json.dumps([list(Group.objects.values_list('name', flat=True)),"
    " sorted(set(AuditEvent.objects.values_list('action', flat=True)))]))"
)


def test_sqlite_bundle_to_storage_target_restored_into_new_installation(tmp_path):
    old = _env(tmp_path / "old")
    _manage(old, "migrate", "-v0")
    _manage(old, "init_keys")
    _manage(old, "shell", "-c", MAKE_DATA)
    out = _manage(old, "backup_console", "--keep", "1").stdout
    _manage(old, "backup_console", "--keep", "1")
    folder = tmp_path / "old" / "storage" / "default" / "_console"
    kept = list(folder.glob("*.cairnbak"))
    assert len(kept) == 1 and "console bundle written to file://" in out
    # the storage target's copy is sealed: no SQLite header, no key
    raw = kept[0].read_bytes()
    assert b"SQLite format 3" not in raw
    assert (tmp_path / "old" / "keys" / "org.key").read_bytes() not in raw

    new = _env(tmp_path / "new")
    new["CAIRN_LOCAL_STORAGE_DIR"] = str(tmp_path / "old" / "storage")
    res = _manage(new, "restore_console", "latest")
    assert "restored the console" in res.stdout, res.stderr
    for name in ("keys/org.key", "pki/ca.key", "pki/ca.crt"):
        assert (tmp_path / "new" / name).read_bytes() == (tmp_path / "old" / name).read_bytes()
        assert (tmp_path / "new" / name).stat().st_mode & 0o077 == 0
    groups, actions = json.loads(
        _manage(new, "shell", "-c", READ_DATA).stdout.strip().splitlines()[-1]
    )
    assert groups == ["kept-through-restore"]
    assert {"console.backup", "console.restore", "keys.init"} <= set(actions)
    # a non-empty installation is refused without --force; with it, replaced
    again = _manage(new, "restore_console", "latest", check=False)
    assert again.returncode != 0 and "not empty" in again.stderr
    _manage(
        new,
        "shell",
        "-c",
        "from console.fleet.models import DeviceGroup as Group; Group.objects.create(name='later')",
    )
    _manage(new, "restore_console", "latest", "--force")
    groups, _ = json.loads(_manage(new, "shell", "-c", READ_DATA).stdout.strip().splitlines()[-1])
    assert groups == ["kept-through-restore"]
    con = sqlite3.connect(tmp_path / "new" / "cairn.sqlite3")
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_bad_input_is_a_clear_error(tmp_path):
    env = _env(tmp_path / "v")
    _manage(env, "migrate", "-v0")
    missing = _manage(env, "restore_console", str(tmp_path / "nope.bak"), check=False)
    assert missing.returncode != 0 and "no such bundle file" in missing.stderr
    (tmp_path / "junk.bak").write_bytes(b"not a bundle")
    fresh = _env(tmp_path / "fresh")
    junk = _manage(fresh, "restore_console", str(tmp_path / "junk.bak"), check=False)
    assert junk.returncode != 0 and "wrong magic" in junk.stderr
    short = _manage(
        {**env, "CAIRN_RECOVERY_PASSPHRASE": "short"},
        "backup_console",
        "-o",
        str(tmp_path / "b"),
        check=False,
    )
    assert short.returncode != 0 and "at least 12" in short.stderr and not (tmp_path / "b").exists()


def test_schedule_is_setting_controlled(tmp_path):
    code = "from django.conf import settings; print(settings.CELERY_BEAT_SCHEDULE.get('backup-console'))"
    env = _env(tmp_path / "s")
    assert _manage(env, "shell", "-c", code).stdout.strip().splitlines()[-1] == "None"
    on = _manage({**env, "CAIRN_CONSOLE_BACKUP_HOURS": "6"}, "shell", "-c", code).stdout
    assert "storage.backup_console" in on and "21600.0" in on
    # the task itself, as beat runs it
    pf = tmp_path / "pass"
    pf.write_text(PASS + "\n")
    _manage(env, "migrate", "-v0")
    task_run = "from console.storage.tasks import backup_console; backup_console()"
    no_keys = _manage(
        {**env, "CAIRN_RECOVERY_PASSPHRASE_FILE": str(pf)}, "shell", "-c", task_run, check=False
    )
    assert no_keys.returncode != 0 and "does not exist: nothing to back up" in no_keys.stderr
    _manage(env, "init_keys")
    task = "from console.storage.tasks import backup_console; print(backup_console())"
    out = _manage({**env, "CAIRN_RECOVERY_PASSPHRASE_FILE": str(pf)}, "shell", "-c", task).stdout
    assert "_console/console-" in out
    bundle = Path(out.strip().splitlines()[-1].removeprefix("file://"))
    assert (
        sealed.open_stream(bundle.open("rb"), io.BytesIO(), PASS)["info"]["what"]
        == "cairn console bundle"
    )
