"""The repository: init, open, keys, versions, the object cache (agent/engine/repository.py)."""

from __future__ import annotations

import json
import os

import pytest

from agent.engine.errors import (
    CorruptObject,
    NotARepository,
    RepositoryExists,
    UnsupportedVersion,
    WrongKey,
)
from agent.engine.repository import Repository
from agent.engine.store import (
    LocalStore,
)
from tests.agent.conftest import FAST_KDF, PASSPHRASE, make_repo


def test_init_open_and_keys(tmp_path):
    org = os.urandom(32)
    repo = make_repo(tmp_path / "r", org_key=org)
    with pytest.raises(RepositoryExists):
        make_repo(tmp_path / "r")
    store = LocalStore(tmp_path / "r")
    assert Repository.open(store, key=org).id == repo.id
    assert Repository.open(store, passphrase=PASSPHRASE).id == repo.id
    with pytest.raises(WrongKey, match="wrong passphrase"):
        Repository.open(store, passphrase="nope")
    with pytest.raises(WrongKey, match="wrong organisation key"):
        Repository.open(store, key=os.urandom(32))
    repo.add_key(passphrase="second", kdf=FAST_KDF)
    assert Repository.open(store, passphrase="second").id == repo.id
    # key files of another repository never open this one
    other = make_repo(tmp_path / "other")
    for k in other.store.list("keys/"):
        store.put(k, other.store.get(k))
    assert Repository.open(store, passphrase=PASSPHRASE).id == repo.id
    # nothing on disk holds key material in clear
    for k in store.list("keys/"):
        assert repo.keys.encryption not in store.get(k)


def test_not_a_repository_and_unknown_version(tmp_path):
    with pytest.raises(NotARepository):
        Repository.open(LocalStore(tmp_path / "empty"), passphrase="x")
    repo = make_repo(tmp_path / "r")
    path = tmp_path / "r" / "config"
    doc = json.loads(path.read_bytes())
    path.write_text(json.dumps({**doc, "version": 2}))
    with pytest.raises(UnsupportedVersion, match="version 2 is not supported"):
        Repository.open(repo.store, passphrase=PASSPHRASE)
    # the plaintext version is authenticated by the sealed copy
    path.write_text(json.dumps({**doc, "repository_id": "0" * 64}))
    with pytest.raises(WrongKey):
        Repository.open(repo.store, passphrase=PASSPHRASE)
    sealed = bytearray(doc["sealed"].encode())
    sealed[20] = ord("A") if sealed[20] != ord("A") else ord("B")
    path.write_text(json.dumps({**doc, "sealed": sealed.decode()}))
    with pytest.raises(CorruptObject):
        Repository.open(repo.store, passphrase=PASSPHRASE)


def test_object_cache_serves_index_and_trees_without_store_reads(tmp_path):
    from agent.engine.backup import run_backup

    class CountingStore(LocalStore):
        gets: list = []

        def get(self, key):
            self.gets.append(key)
            return super().get(key)

    make_repo(tmp_path / "r")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"data")
    cache = tmp_path / "cache"
    store = CountingStore(tmp_path / "r")
    repo = Repository.open(store, passphrase=PASSPHRASE, cache_dir=cache)
    run_backup(repo, [str(src)])
    CountingStore.gets.clear()
    repo = Repository.open(store, passphrase=PASSPHRASE, cache_dir=cache)
    run_backup(repo, [str(src)])
    fetched = [k for k in CountingStore.gets if k.startswith(("index/", "data/"))]
    assert fetched == []
    # a damaged cache entry is a miss, never served
    for path in (cache / repo.id / "index").iterdir():
        path.write_bytes(b"garbage")
    CountingStore.gets.clear()
    repo = Repository.open(store, passphrase=PASSPHRASE, cache_dir=cache)
    assert not repo.damaged_indexes
    assert any(k.startswith("index/") for k in CountingStore.gets)
