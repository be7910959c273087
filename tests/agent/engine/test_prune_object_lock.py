"""Prune honours S3 Object Lock (issue 11) against moto with a bucket made
with Object Lock: a pack whose retention still runs is not deleted by the
sweep but left and marked again; once its retention is over, a later prune
deletes it. A locked index object defers the whole sweep."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from minio.commonconfig import GOVERNANCE
from minio.retention import Retention

from agent.engine.backup import run_backup
from agent.engine.check import run_check
from agent.engine.prune import DEFAULT_GRACE, forget, prune
from agent.engine.repository import Repository
from agent.engine.restore import run_restore
from agent.engine.retention import RetentionPolicy
from agent.engine.store.s3 import S3Store
from tests.agent.conftest import FAST_KDF, PASSPHRASE, SMALL_CHUNKS

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATER = NOW + DEFAULT_GRACE + dt.timedelta(minutes=1)
PREFIX = "org/dev-1"


@pytest.fixture
def locked_bucket(s3_server):
    name = f"lock-{os.urandom(6).hex()}"
    s3_server.client().make_bucket(name, object_lock=True)
    return name


def store_for(s3_server, bucket) -> S3Store:
    return S3Store(
        bucket=bucket,
        prefix=PREFIX,
        endpoint=s3_server.host,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        region=s3_server.region,
        secure=False,
    )


def history(s3_server, bucket, tmp_path):
    repo = Repository.init(
        store_for(s3_server, bucket),
        passphrase=PASSPHRASE,
        kdf=FAST_KDF,
        chunker=SMALL_CHUNKS,
        pack_size=256 * 1024,
    )
    src = tmp_path / "src"
    src.mkdir()
    ids = []
    for n in range(2):
        for old in src.iterdir():
            old.unlink()
        (src / f"f{n}").write_bytes(os.urandom(300 * 1024))
        ids.append(run_backup(repo, [str(src)], hostname="pc").snapshot_id)
    return src, ids


def open_repo(s3_server, bucket) -> Repository:
    return Repository.open(store_for(s3_server, bucket), passphrase=PASSPHRASE)


def lock(s3_server, bucket, keys, seconds: float) -> dt.datetime:
    until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    client = s3_server.client()
    for key in keys:
        client.set_object_retention(bucket, f"{PREFIX}/{key}", Retention(GOVERNANCE, until))
    return until


def test_a_locked_pack_is_left_and_deleted_after_its_lock_expires(
    s3_server, locked_bucket, tmp_path
):
    src, (old, new) = history(s3_server, locked_bucket, tmp_path)
    forget(open_repo(s3_server, locked_bucket), RetentionPolicy(keep_last=1))
    marked = prune(open_repo(s3_server, locked_bucket), now=NOW)
    assert marked.packs_marked > 0 and marked.packs_deleted == 0

    store = store_for(s3_server, locked_bucket)
    packs = sorted(store.list("data/"))
    until = lock(s3_server, locked_bucket, packs, 6)
    got = store.locked_until(packs[0])
    assert got is not None and abs((got - until).total_seconds()) < 1.5

    swept = prune(open_repo(s3_server, locked_bucket), now=LATER)
    assert swept.objects_locked == marked.packs_marked
    assert swept.packs_deleted == 0 and swept.bytes_deleted == 0
    assert swept.packs_marked == marked.packs_marked and swept.marker  # marked again
    assert any("Object Lock" in w for w in swept.warnings)
    assert sorted(store.list("data/")) == packs  # nothing deleted
    repo = open_repo(s3_server, locked_bucket)
    assert run_check(repo, read_data=True).ok

    time.sleep(max(0.0, (until - dt.datetime.now(dt.UTC)).total_seconds()) + 1)
    assert store.locked_until(packs[0]) is not None  # the date stays, in the past
    done = prune(open_repo(s3_server, locked_bucket), now=LATER + DEFAULT_GRACE * 2)
    assert done.objects_locked == 0 and done.packs_deleted == marked.packs_marked
    assert done.bytes_deleted == marked.bytes_marked
    assert len(list(store.list("data/"))) == len(packs) - marked.packs_marked
    repo = open_repo(s3_server, locked_bucket)
    assert [s.id for s in repo.snapshots()] == [new]
    assert run_check(repo, read_data=True).ok
    run_restore(repo, new, str(tmp_path / "out"))
    assert (tmp_path / "out" / str(src).lstrip("/") / "f1").read_bytes() == (
        src / "f1"
    ).read_bytes()


def test_a_locked_index_object_defers_the_sweep(s3_server, locked_bucket, tmp_path):
    _, (old, new) = history(s3_server, locked_bucket, tmp_path)
    forget(open_repo(s3_server, locked_bucket), RetentionPolicy(keep_last=1))
    marked = prune(open_repo(s3_server, locked_bucket), now=NOW)
    store = store_for(s3_server, locked_bucket)
    before = sorted(store.list(""))
    lock(s3_server, locked_bucket, list(store.list("index/"))[:1], 60)

    deferred = prune(open_repo(s3_server, locked_bucket), now=LATER)
    assert deferred.objects_locked == 1 and deferred.packs_deleted == 0
    assert deferred.markers_swept == 0 and deferred.index_objects_written == 0
    assert any("sweep deferred" in w for w in deferred.warnings)
    assert sorted(store.list("")) == before  # not an object deleted, none written
    assert marked.packs_marked > 0
    assert run_check(open_repo(s3_server, locked_bucket), read_data=True).ok
