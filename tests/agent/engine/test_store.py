"""The object stores (agent/engine/store/): LocalStore and open_store."""

from __future__ import annotations

import threading

import pytest

from agent.engine.store import (
    LocalStore,
    ObjectExists,
    ObjectNotFound,
    StoreError,
    open_store,
)


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
