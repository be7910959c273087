"""Unit tests: store, crypto and key wrapping, chunker, compression, packs, index, format."""

from __future__ import annotations

import json
import os
import threading

import pytest

from agent.engine import compress
from agent.engine.chunker import Chunker, ChunkerParams
from agent.engine.crypto import (
    NONCE_SIZE,
    OVERHEAD,
    Cipher,
    MasterKeys,
    org_key_id,
    unwrap_keys,
    wrap_keys,
)
from agent.engine.errors import (
    CorruptObject,
    NotARepository,
    RepositoryExists,
    UnsupportedVersion,
    WrongKey,
)
from agent.engine.index import decode_index, encode_index
from agent.engine.pack import DATA, PackWriter, read_pack_header
from agent.engine.repository import Repository
from agent.engine.store import (
    LocalStore,
    ObjectExists,
    ObjectNotFound,
    StoreError,
    open_store,
)
from agent.engine.tree import decode_name, decode_tree, encode_name, encode_tree
from agent.engine.walker import ExcludeMatcher
from tests.agent.conftest import FAST_KDF, PASSPHRASE, make_repo


# --- store -------------------------------------------------------------------------------
def test_local_store_roundtrip_and_create_only(tmp_path):
    s = LocalStore(tmp_path / "s")
    s.put("data/ab/abc", b"hello world")
    assert s.get("data/ab/abc") == b"hello world"
    assert s.get_range("data/ab/abc", 6, 5) == b"world"
    assert s.get_range("data/ab/abc", 6, 100) == b"world"
    assert s.size("data/ab/abc") == 11
    assert s.exists("data/ab/abc") and not s.exists("data/ab/nope")
    with pytest.raises(ObjectExists):
        s.put("data/ab/abc", b"other")
    assert s.get("data/ab/abc") == b"hello world"
    s.put("data/cd/x", memoryview(b"view"))
    s.put("index/1", b"i")
    assert sorted(s.list("data/")) == ["data/ab/abc", "data/cd/x"]
    assert list(s.list("index/")) == ["index/1"]
    assert list(s.list("nothing/")) == []
    with pytest.raises(ObjectNotFound):
        s.get("index/2")
    with pytest.raises(ObjectNotFound):
        s.get_range("index/2", 0, 1)
    s.delete("index/1")
    s.delete("index/1")  # missing is fine
    assert not s.exists("index/1")


def test_local_store_ignores_temp_files_and_rejects_bad_keys(tmp_path):
    s = LocalStore(tmp_path / "s")
    s.put("keys/a", b"1")
    (tmp_path / "s" / "keys" / ".tmp-deadbeef").write_bytes(b"partial")
    assert list(s.list("keys/")) == ["keys/a"]
    for bad in ("", "/abs", "a/../b", "a//b", "a/", "..", "a\\b"):
        with pytest.raises(StoreError):
            s.put(bad, b"x")


def test_local_store_concurrent_create_only(tmp_path):
    s = LocalStore(tmp_path / "s")
    results = []

    def put():
        try:
            s.put("k/same", b"same bytes")
            results.append("ok")
        except ObjectExists:
            results.append("exists")

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1 and results.count("exists") == 7


def test_open_store_urls(tmp_path, monkeypatch):
    assert isinstance(open_store(str(tmp_path / "a")), LocalStore)
    s = open_store(f"file://{tmp_path}/b")
    assert isinstance(s, LocalStore) and s.root == tmp_path / "b"
    with pytest.raises(StoreError):
        open_store("ftp://host/x")
    with pytest.raises(StoreError):
        open_store("s3:///prefix")
    seen = {}

    class FakeS3:
        def __init__(self, **kw):
            seen.update(kw)

    import agent.engine.store.s3 as s3store

    monkeypatch.setattr(s3store, "S3Store", FakeS3)
    monkeypatch.setenv("CAIRN_S3_ENDPOINT", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sk")
    open_store("s3://bucket/org/dev-1")
    assert seen["bucket"] == "bucket" and seen["prefix"] == "org/dev-1"
    assert seen["endpoint"] == "127.0.0.1:9000" and seen["secure"] is False
    assert (seen["access_key"], seen["secret_key"]) == ("ak", "sk")


# --- crypto --------------------------------------------------------------------------------
def test_cipher_roundtrip_tamper_and_nonces():
    c = Cipher(os.urandom(32))
    sealed = c.seal(b"secret", b"aad")
    assert len(sealed) == 6 + OVERHEAD
    assert c.open(sealed, b"aad") == b"secret"
    with pytest.raises(CorruptObject):
        c.open(sealed, b"other aad")
    for i in range(len(sealed)):
        bad = bytearray(sealed)
        bad[i] ^= 1
        with pytest.raises(CorruptObject):
            c.open(bytes(bad), b"aad")
    with pytest.raises(CorruptObject):
        Cipher(os.urandom(32)).open(sealed, b"aad")
    nonces = {c.seal(b"x", b"")[:NONCE_SIZE] for _ in range(5000)}
    assert len(nonces) == 5000
    out = bytearray(10 + OVERHEAD)
    c.seal_into(b"0123456789", b"a", memoryview(out))
    assert c.open(bytes(out), b"a") == b"0123456789"


def test_key_wrapping_org_key_and_passphrase():
    keys = MasterKeys.generate()
    org = os.urandom(32)
    doc = wrap_keys(keys, "repo1", org_key=org)
    assert doc["org_key_id"] == org_key_id(org)
    assert org.hex() not in json.dumps(doc)
    assert unwrap_keys(doc, "repo1", org_key=org) == keys
    assert unwrap_keys(doc, "repo1", org_key=os.urandom(32)) is None
    assert unwrap_keys(doc, "repo2", org_key=org) is None  # bound to its repository
    pdoc = wrap_keys(keys, "repo1", passphrase="pw", kdf=FAST_KDF)
    assert pdoc["kdf"]["algorithm"] == "argon2id"
    assert unwrap_keys(pdoc, "repo1", passphrase="pw") == keys
    assert unwrap_keys(pdoc, "repo1", passphrase="PW") is None
    with pytest.raises(UnsupportedVersion):
        unwrap_keys({**pdoc, "version": 99}, "repo1", passphrase="pw")


# --- chunker and compression -----------------------------------------------------------------
def test_chunker_is_content_defined_and_seeded():
    data = os.urandom(2 * 1024 * 1024)
    params = ChunkerParams(min_size=16 * 1024, avg_size=64 * 1024, max_size=256 * 1024, seed=1)

    def cuts(buf, p=params):
        return [bytes(c) for c in Chunker(p).cut_buffer(buf)]

    a = cuts(data)
    assert b"".join(a) == data
    assert all(len(c) <= 256 * 1024 for c in a)
    shifted = cuts(b"inserted!" + data)
    assert len(set(a) & set(shifted)) >= len(a) - 2  # only the first chunk(s) differ
    other_seed = cuts(data, ChunkerParams(16 * 1024, 64 * 1024, 256 * 1024, seed=99))
    assert [len(c) for c in other_seed] != [len(c) for c in a]


def test_compression_skips_incompressible():
    comp = compress.Compressor(3)
    text = b"the quick brown fox " * 20000
    method, payload = comp.compress(text)
    assert method == compress.ZSTD and len(payload) < len(text) // 10
    assert compress.decompress(method, payload, len(text)) == text
    noise = os.urandom(1024 * 1024)
    method, payload = comp.compress(noise)
    assert method == compress.NONE and payload is noise
    with pytest.raises(CorruptObject):
        compress.decompress(compress.ZSTD, b"not zstd", 10)


# --- packs, index, trees ------------------------------------------------------------------------
def test_pack_writer_and_header():
    c = Cipher(os.urandom(32))
    done = []
    w = PackWriter(c, 100_000, 64 * 1024, done.append, buffers=2)
    blobs = {os.urandom(32): os.urandom(n) for n in (10, 30_000, 60_000, 50_000, 1)}
    for bid, data in blobs.items():
        w.add(bid, DATA, compress.NONE, len(data), data)
    w.flush()
    assert len(done) == 2
    seen = {}
    for pack in done:
        data = bytes(pack.data)
        entries = read_pack_header(c, data)
        assert entries == pack.entries
        for e in entries:
            from agent.engine.pack import blob_aad

            seen[e.id] = c.open(data[e.offset : e.offset + e.length], blob_aad(0, 0, e.id))
        pack.release()
    assert seen == blobs
    bad = bytearray(bytes(done[0].data))
    bad[-10] ^= 0xFF
    with pytest.raises(CorruptObject):
        read_pack_header(c, bytes(bad))


def test_index_roundtrip():
    from agent.engine.pack import BlobEntry

    packs = {
        os.urandom(32).hex(): [BlobEntry(os.urandom(32), 0, 1, 8 + i, 100, 200) for i in range(3)],
        os.urandom(32).hex(): [BlobEntry(os.urandom(32), 1, 0, 8, 5, 5)],
    }
    assert decode_index(encode_index(packs)) == packs
    with pytest.raises(CorruptObject):
        decode_index(b"garbage")


def test_tree_names_roundtrip_bytes():
    for raw in (b"plain", b"caf\xc3\xa9", b"bad\xff\xfename", b"new\nline", b"\x01"):
        node = {}
        encode_name(raw, node)
        assert decode_name(node) == raw
    data = encode_tree([{"name": "b", "type": "file"}, {"name": "a", "type": "dir"}])
    assert [n["name"] for n in decode_tree(data)] == ["a", "b"]
    with pytest.raises(UnsupportedVersion):
        decode_tree(b'{"v": 2, "nodes": []}')


def test_exclude_matcher():
    m = ExcludeMatcher(["*.tmp", "/home/*/.cache", "node_modules"])
    assert m.excluded(b"/x/a.tmp", b"a.tmp")
    assert m.excluded(b"/home/ana/.cache", b".cache")
    assert not m.excluded(b"/home/ana/.cache2", b".cache2")
    assert m.excluded(b"/src/node_modules", b"node_modules")
    assert not m.excluded(b"/src/main.py", b"main.py")


# --- repository format ----------------------------------------------------------------------------
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


def test_pack_writer_blob_larger_than_a_buffer_gets_its_own_pack():
    c = Cipher(os.urandom(32))
    done = []
    w = PackWriter(c, 10_000, 1_000, done.append, buffers=1)
    small, big = os.urandom(500), os.urandom(50_000)
    w.add(b"s" * 32, DATA, compress.NONE, 500, small)
    w.add(b"b" * 32, DATA, compress.NONE, 50_000, big)
    w.flush()
    assert len(done) == 2
    for pack in done:
        entries = read_pack_header(c, bytes(pack.data))
        assert entries == pack.entries and len(entries) == 1
        pack.release()
