"""Fixtures for the engine tests: small, fast repositories on local disk.

Small chunk and pack sizes make a few hundred KiB of test data span many
chunks and packs; a cheap Argon2id setting keeps key derivation out of the
test time (the defaults are exercised by the CLI tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.engine.chunker import ChunkerParams
from agent.engine.repository import Repository
from agent.engine.store import LocalStore

ROOT = Path(__file__).resolve().parents[2]
FAST_KDF = {"algorithm": "argon2id", "time_cost": 1, "memory_kib": 64, "parallelism": 1}
SMALL_CHUNKS = ChunkerParams(min_size=8 * 1024, avg_size=32 * 1024, max_size=128 * 1024, seed=7)
PASSPHRASE = "correct horse battery staple"


def make_repo(path, **kw) -> Repository:
    kw.setdefault("passphrase", PASSPHRASE)
    kw.setdefault("kdf", FAST_KDF)
    kw.setdefault("chunker", SMALL_CHUNKS)
    kw.setdefault("pack_size", 256 * 1024)
    return Repository.init(LocalStore(path), **kw)


@pytest.fixture
def repo(tmp_path) -> Repository:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def reopen(repo):
    """Open the fixture repository afresh (as a new process would)."""

    def _reopen() -> Repository:
        return Repository.open(LocalStore(repo.store.root), passphrase=PASSPHRASE)

    return _reopen


def cli_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["PYTHONPATH"] = str(ROOT)
    env["CAIRN_PASSWORD"] = PASSPHRASE
    env.update(extra)
    return env


def run_cli(*args, env=None, check=None, **kw) -> subprocess.CompletedProcess:
    """``python -m agent ARGS`` as a real subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "agent", *map(str, args)],
        env=env if env is not None else cli_env(),
        capture_output=True,
        cwd=kw.pop("cwd", None),
        timeout=kw.pop("timeout", 120),
        **kw,
    )
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc
