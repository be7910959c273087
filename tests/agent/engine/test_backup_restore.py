"""Backup and restore through the Python API: round trips, dedup, incremental,
awkward input, restore policies."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time

import pytest

from agent.engine import backup_read as backup_mod
from agent.engine.backup import run_backup
from agent.engine.check import run_check
from agent.engine.chunker import ChunkerParams
from agent.engine.errors import BackupCancelled, SnapshotNotFound
from agent.engine.repository import Repository
from agent.engine.restore import run_restore
from agent.engine.store import LocalStore, StoreError
from agent.engine.tree import CHANGED_DURING_READ
from tests.agent.conftest import PASSPHRASE, make_repo
from tests.agent.helpers import read, restored, snapshot_of_disk

OLD = time.time() - 3600  # outside the racy window of the next backup


def age(root) -> None:
    """Back-date every mtime, so incremental runs may trust stat data."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.utime(p, (OLD, OLD))
    os.utime(root, (OLD, OLD))


def build_sample(root) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "docs").mkdir()
    (root / "docs" / "a.txt").write_bytes(b"alpha\n" * 1000)
    (root / "docs" / "b.bin").write_bytes(os.urandom(300_000))
    (root / "docs" / "copy.bin").write_bytes((root / "docs" / "b.bin").read_bytes())
    (root / "empty").write_bytes(b"")
    (root / "emptydir").mkdir()
    (root / "exec.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "exec.sh", 0o750)
    os.symlink("docs/a.txt", root / "link")
    os.symlink("/nonexistent/target", root / "dangling")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink(".", root / "docs" / "self")  # a symlink loop through a directory
    (root / "readonly").mkdir()
    (root / "readonly" / "f").write_bytes(b"in a read-only dir")
    os.chmod(root / "readonly", 0o555)


def test_roundtrip_sample_tree(repo, tmp_path):
    src = tmp_path / "src"
    build_sample(src)
    result = run_backup(repo, [str(src)])
    assert result.warnings == []
    assert result.stats.files_new == 6
    # content shared within and across files is stored once
    assert result.stats.bytes_added_raw < 350_000
    out = tmp_path / "out"
    res = run_restore(repo, result.snapshot_id, out)
    assert res.ok, res.errors
    assert snapshot_of_disk(restored(out, src)) == snapshot_of_disk(src)
    assert run_check(repo, read_data=True).ok


def test_multiple_sources_restore_at_original_paths(repo, tmp_path):
    a, b = tmp_path / "one" / "a", tmp_path / "two"
    a.mkdir(parents=True)
    b.mkdir()
    (a / "f").write_bytes(b"A")
    (b / "g").write_bytes(b"B")
    single = tmp_path / "single.txt"
    single.write_bytes(b"just a file")
    result = run_backup(repo, [str(a), str(b), str(single), str(a / "f")])
    assert sorted(result.snapshot.paths) == sorted([str(a), str(b), str(single), str(a / "f")])
    out = tmp_path / "out"
    run_restore(repo, "latest", out)
    assert (out / str(a / "f").lstrip("/")).read_bytes() == b"A"
    assert (out / str(b / "g").lstrip("/")).read_bytes() == b"B"
    assert (out / str(single).lstrip("/")).read_bytes() == b"just a file"
    assert not (out / str(tmp_path / "other").lstrip("/")).exists()


def test_incremental_unchanged_tree_reads_nothing(repo, reopen, tmp_path):
    src = tmp_path / "many"
    for d in range(100):
        sub = src / f"d{d:03}"
        sub.mkdir(parents=True)
        for f in range(200):
            (sub / f"f{f:03}.txt").write_bytes(b"%d-%d\n" % (d, f))
    age(src)
    first = run_backup(repo, [str(src)])
    assert first.stats.files_new == 20_000
    repo2 = reopen()
    second = run_backup(repo2, [str(src)])
    s = second.stats
    assert (s.files_read, s.bytes_read, s.files_unchanged) == (0, 0, 20_000)
    assert s.data_blobs_added == 0 and s.dirs_unchanged >= 100
    # Only directories above the source may differ (other tests touch /tmp).
    assert s.tree_blobs_added <= len(src.parts)

    def source_tree(snapshot):
        return next(n.subtree for p, n in repo2.walk(snapshot.tree) if p == bytes(src))

    assert source_tree(second.snapshot) == source_tree(first.snapshot)
    assert second.parent == first.snapshot_id
    # change one file: exactly one read
    (src / "d050" / "f100.txt").write_bytes(b"changed\n")
    third = run_backup(repo2, [str(src)])
    assert third.stats.files_read == 1 and third.stats.files_changed == 1
    assert third.stats.dirs_unchanged == 99  # only d050 and its ancestors changed


def test_a_parent_tree_that_cannot_be_fetched_costs_a_full_read_not_the_backup(repo, tmp_path):
    """An offline agent whose cache lacks its parent's trees (the store
    refuses every pack GET) still backs up, reading the files again and
    deduplicating through the index."""
    src = tmp_path / "src"
    build_sample(src)
    age(src)
    first = run_backup(repo, [str(src)])

    class NoPackReads(LocalStore):
        def get(self, key):
            if key.startswith("data/"):
                raise StoreError(f"{key} is not in the local copy of the repository")
            return super().get(key)

    offline = Repository.open(NoPackReads(repo.store.root), passphrase=PASSPHRASE)
    second = run_backup(offline, [str(src)])
    assert second.parent == first.snapshot_id
    assert second.stats.files_read == first.stats.files_new > 0
    assert second.stats.data_blobs_added == 0  # everything deduplicated
    out = tmp_path / "out"
    run_restore(repo, second.snapshot_id, str(out))
    assert snapshot_of_disk(out / str(src).lstrip("/")) == snapshot_of_disk(src)


def test_incremental_detects_same_size_same_mtime_rewrite(repo, tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    f = src / "f"
    f.write_bytes(b"aaaa")
    age(src)
    run_backup(repo, [str(src)])
    st = f.stat()
    f.write_bytes(b"bbbb")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: ctime differs
    result = run_backup(repo, [str(src)])
    assert result.stats.files_changed == 1
    out = tmp_path / "out"
    run_restore(repo, "latest", out)
    assert (out / str(f).lstrip("/")).read_bytes() == b"bbbb"


def test_excludes(repo, tmp_path):
    src = tmp_path / "s"
    (src / "keep").mkdir(parents=True)
    (src / "cache").mkdir()
    (src / "keep" / "a.txt").write_bytes(b"a")
    (src / "keep" / "a.tmp").write_bytes(b"t")
    (src / "cache" / "big").write_bytes(b"x" * 1000)
    result = run_backup(repo, [str(src)], excludes=["*.tmp", f"{src}/cache"])
    paths = {p for p, _ in repo.walk(result.snapshot.tree)}
    assert os.fsencode(f"{src}/keep/a.txt") in paths
    assert os.fsencode(f"{src}/keep/a.tmp") not in paths
    assert os.fsencode(f"{src}/cache") not in paths


def test_translate_reads_view_but_records_original_paths(repo, tmp_path):
    original = tmp_path / "live"
    view = tmp_path / "snapview"
    original.mkdir()
    (original / "doc.txt").write_bytes(b"live, being edited")
    view.mkdir()
    (view / "doc.txt").write_bytes(b"frozen snapshot copy")
    orig_prefix = str(original)

    def translate(path: str) -> str:
        if path == orig_prefix or path.startswith(orig_prefix + "/"):
            return str(view) + path[len(orig_prefix) :]
        return path

    result = run_backup(repo, [str(original)], translate=translate)
    out = tmp_path / "out"
    run_restore(repo, result.snapshot_id, out)
    assert (out / str(original / "doc.txt").lstrip("/")).read_bytes() == b"frozen snapshot copy"
    assert result.snapshot.paths == [str(original)]


def test_special_files_recorded_never_read(repo, tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    os.mkfifo(src / "fifo")  # opening this for reading would block forever
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "sock"))
    try:
        os.mknod(src / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        have_dev = True
    except PermissionError:
        have_dev = False
    (src / "f").write_bytes(b"x")
    result = run_backup(repo, [str(src)])
    sock.close()
    types = {p.rsplit(b"/", 1)[-1]: n.type for p, n in repo.walk(result.snapshot.tree)}
    assert types[b"fifo"] == "fifo" and types[b"sock"] == "socket"
    if have_dev:
        assert types[b"null"] == "chardev"
    assert result.stats.files_read == 1
    out = tmp_path / "out"
    res = run_restore(repo, "latest", out)
    assert stat.S_ISFIFO(os.lstat(restored(out, src) + b"/fifo").st_mode)
    assert any(w.kind == "unsupported" for w in res.warnings)  # the socket


def test_fifo_swapped_in_after_walk_does_not_hang(repo, tmp_path, monkeypatch):
    src = tmp_path / "s"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    real_open = backup_mod.open_source_file

    def swap(path):
        os.unlink(path)
        os.mkfifo(path)
        return real_open(path)

    monkeypatch.setattr(backup_mod, "open_source_file", swap)
    result = run_backup(repo, [str(src)])
    assert [w.kind for w in result.warnings] == ["vanished"]


def test_names_not_utf8_and_with_newlines_roundtrip(repo, tmp_path):
    src = os.fsencode(tmp_path / "names")
    os.mkdir(src)
    names = [b"latin1-\xe9t\xe9", b"line\nbreak", b"\xff\xfe\xfd", b"tab\tand space ", b"-dash"]
    for i, n in enumerate(names):
        with open(os.path.join(src, n), "wb") as f:
            f.write(b"%d" % i)
    os.mkdir(os.path.join(src, b"dir\xc3"))
    os.symlink(b"target-\xff\n", os.path.join(src, b"dir\xc3", b"ln\xfe"))
    run_backup(repo, [src])
    out = os.fsencode(tmp_path / "out")
    run_restore(repo, "latest", out)
    assert snapshot_of_disk(restored(out, src)) == snapshot_of_disk(src)
    assert os.readlink(restored(out, src) + b"/dir\xc3/ln\xfe") == b"target-\xff\n"


def test_sparse_file_over_4_gib(tmp_path):
    # production chunk sizes: 4 GiB of zeros is ~1,000 max-size chunks
    repo = make_repo(tmp_path / "repo", chunker=ChunkerParams(seed=3), pack_size=16 << 20)
    src = tmp_path / "sparse"
    src.mkdir()
    big = src / "disk.img"
    size = (4 << 30) + 12345
    with open(big, "wb") as f:
        f.write(b"head" * 1000)
        f.seek(size - 4000)
        f.write(b"tail" * 1000)
    result = run_backup(repo, [str(src)])
    assert result.stats.total_bytes == size
    assert result.stats.data_blobs_added <= 4  # zeros deduplicate to one chunk
    assert result.stats.bytes_added < 2 * 1024 * 1024
    out = tmp_path / "out"
    res = run_restore(repo, "latest", out)
    assert res.ok
    dest = restored(out, big)
    st = os.stat(dest)
    assert st.st_size == size
    assert st.st_blocks * 512 < 64 * 1024 * 1024  # restored sparse
    with open(dest, "rb") as f:
        assert f.read(4000) == b"head" * 1000
        f.seek(size - 4000)
        assert f.read() == b"tail" * 1000
        f.seek(3 << 30)
        assert f.read(4096) == bytes(4096)


def test_deep_tree(repo, tmp_path):
    src = tmp_path / "deep"
    path = src
    for i in range(300):
        path = path / f"d{i}"
    os.makedirs(path)
    (path / "bottom.txt").write_bytes(b"deep down")
    run_backup(repo, [str(src)])
    out = tmp_path / "out"
    assert run_restore(repo, "latest", out).ok
    assert os.path.exists(restored(out, path / "bottom.txt"))
    assert run_check(repo).ok


def test_vanishing_file_is_a_warning(repo, tmp_path, monkeypatch):
    src = tmp_path / "s"
    src.mkdir()
    (src / "stays").write_bytes(b"1")
    (src / "goes").write_bytes(b"2")
    real_open = backup_mod.open_source_file

    def vanish(path):
        if path.endswith(b"goes"):
            os.unlink(path)
        return real_open(path)

    monkeypatch.setattr(backup_mod, "open_source_file", vanish)
    result = run_backup(repo, [str(src)])
    assert [(w.kind, w.path.rsplit("/", 1)[-1]) for w in result.warnings] == [("vanished", "goes")]
    names = {p.rsplit(b"/", 1)[-1] for p, _ in repo.walk(result.snapshot.tree)}
    assert b"stays" in names and b"goes" not in names


class _Appender:
    """Wraps a source file; appends to it on disk after each read, i.e. the
    user keeps writing while we read."""

    def __init__(self, f, path, times):
        self.f, self.path, self.times = f, path, times

    def fileno(self):
        return self.f.fileno()

    def read(self, n=-1):
        data = self.f.read(n)
        self._touch()
        return data

    def readinto(self, b):
        n = self.f.readinto(b)
        self._touch()
        return n

    def seek(self, *a):
        return self.f.seek(*a)

    def _touch(self):
        if self.times[0] > 0:
            self.times[0] -= 1
            with open(self.path, "ab") as w:
                w.write(b"+")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.parametrize("changes, flagged", [(1, False), (100, True)])
def test_file_changing_during_read(repo, tmp_path, monkeypatch, changes, flagged):
    src = tmp_path / "s"
    src.mkdir()
    target = src / "busy.log"
    target.write_bytes(b"start")
    times = [changes]
    real_open = backup_mod.open_source_file

    def opener(path):
        f = real_open(path)
        return _Appender(f, path, times) if path.endswith(b"busy.log") else f

    monkeypatch.setattr(backup_mod, "open_source_file", opener)
    result = run_backup(repo, [str(src)])
    node = next(n for p, n in repo.walk(result.snapshot.tree) if p.endswith(b"busy.log"))
    if flagged:
        assert node.flags == [CHANGED_DURING_READ]
        assert [w.kind for w in result.warnings] == ["changed-during-read"]
        assert result.snapshot.warnings_total == 1
        # never trusted by the next incremental run
        monkeypatch.setattr(backup_mod, "open_source_file", real_open)
        assert run_backup(repo, [str(src)]).stats.files_read == 1
    else:
        assert node.flags is None and result.warnings == []
        assert result.stats.retries >= 1
        out = tmp_path / "out"
        run_restore(repo, "latest", out)
        with open(restored(out, target), "rb") as f:
            assert f.read() == b"start+"


def test_permission_denied_as_root_via_unreadable_source(repo, tmp_path, monkeypatch):
    """Root reads everything, so simulate EACCES at open (the setuid test in
    test_cli covers real permissions)."""
    src = tmp_path / "s"
    src.mkdir()
    (src / "secret").write_bytes(b"x")
    (src / "open").write_bytes(b"y")
    real_open = backup_mod.open_source_file

    def deny(path):
        if path.endswith(b"secret"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path)

    monkeypatch.setattr(backup_mod, "open_source_file", deny)
    result = run_backup(repo, [str(src)])
    assert [w.kind for w in result.warnings] == ["permission-denied"]
    assert result.stats.files_read == 1


def test_missing_source_is_a_warning(repo, tmp_path):
    (tmp_path / "here").mkdir()
    result = run_backup(repo, [str(tmp_path / "here"), str(tmp_path / "not-here")])
    assert [w.kind for w in result.warnings] == ["vanished"]


def test_cancel_indexes_uploaded_data(repo, reopen, tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    for i in range(40):
        (src / f"f{i}").write_bytes(os.urandom(100_000))
    cancel = threading.Event()
    seen = []

    def progress(p):
        seen.append(p.files_done)
        if p.files_done >= 20:
            cancel.set()

    import agent.engine.backup_stats as b

    old = b.PROGRESS_INTERVAL
    b.PROGRESS_INTERVAL = 0
    try:
        with pytest.raises(BackupCancelled):
            run_backup(repo, [str(src)], cancel=cancel, progress=progress, estimate=False)
    finally:
        b.PROGRESS_INTERVAL = old
    repo2 = reopen()
    assert repo2.snapshots() == []
    assert len(repo2.index) > 0  # what was uploaded is indexed and will be reused
    result = run_backup(repo2, [str(src)])
    assert result.stats.bytes_added_raw < 40 * 100_000
    assert run_check(repo2, read_data=True).ok


def test_progress_callback_reports_totals(repo, tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_bytes(b"x" * 1000)
    reports = []
    run_backup(repo, [str(src)], progress=reports.append)
    last = reports[-1]
    assert last.files_done == 5 and last.bytes_done == 5000
    assert last.files_total == 5 and last.bytes_total == 5000


def test_snapshot_resolution(repo, tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    a = run_backup(repo, [str(src)], tags=["first"])
    b = run_backup(repo, [str(src)])
    assert repo.find_snapshot("latest").id == b.snapshot_id
    assert repo.find_snapshot(a.snapshot_id[:10]).id == a.snapshot_id
    assert repo.find_snapshot(a.snapshot_id[:10]).tags == ["first"]
    with pytest.raises(SnapshotNotFound):
        repo.find_snapshot("ffffffffffff" if not a.snapshot_id.startswith("ff") else "000000000")


# --- restore policies ----------------------------------------------------------------------
def test_restore_include_patterns(repo, tmp_path):
    src = tmp_path / "s"
    build_sample(src)
    run_backup(repo, [str(src)])
    out = tmp_path / "out"
    res = run_restore(repo, "latest", out, include=["*.txt", f"{src}/readonly"])
    got = set(snapshot_of_disk(restored(out, src)))
    assert b"docs/a.txt" in got and b"readonly/f" in got
    assert b"docs/b.bin" not in got and b"exec.sh" not in got
    assert res.stats.files == 2


def test_restore_never_overwrites_by_default_and_in_place(repo, tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    doc = src / "doc.txt"
    doc.write_bytes(b"version 1")
    os.utime(doc, (OLD, OLD))
    run_backup(repo, [str(src)])
    doc.write_bytes(b"local edit, newer")
    # in place (target "/"), default: never overwrite
    res = run_restore(repo, "latest", "/", include=[str(doc)])
    assert doc.read_bytes() == b"local edit, newer"
    assert [w.kind for w in res.warnings] == ["exists"]
    # if-newer: the local file is newer than the snapshot copy: kept
    res = run_restore(repo, "latest", "/", include=[str(doc)], overwrite="if-newer")
    assert doc.read_bytes() == b"local edit, newer"
    # local copy older than the snapshot: replaced
    os.utime(doc, (OLD - 100, OLD - 100))
    res = run_restore(repo, "latest", "/", include=[str(doc)], overwrite="if-newer")
    assert doc.read_bytes() == b"version 1" and res.stats.files == 1
    doc.write_bytes(b"again")
    res = run_restore(repo, "latest", "/", include=[str(doc)], overwrite=True)
    assert doc.read_bytes() == b"version 1"
    assert not [p for p in os.listdir(src) if p.startswith(".cairn-restore-")]
    # a deleted file comes back in place
    doc.unlink()
    run_restore(repo, "latest", "/", include=[str(doc)])
    assert doc.read_bytes() == b"version 1"


def test_sparse_file_with_many_regions_roundtrips(repo, tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    path = src / "regions.img"
    size = 20 * 1024 * 1024 + 777
    pieces = {}
    with open(path, "wb") as f:
        f.truncate(size)
        for offset in (0, 3 * 1024 * 1024 + 5, 9 * 1024 * 1024, size - 1000):
            data = os.urandom(min(70_000, size - offset))
            f.seek(offset)
            f.write(data)
            pieces[offset] = data
    assert os.stat(path).st_blocks * 512 < size // 2  # really sparse here
    result = run_backup(repo, [str(src)])
    assert result.stats.bytes_read < size // 2  # holes were not read
    out = tmp_path / "out"
    assert run_restore(repo, "latest", out).ok
    with open(path, "rb") as a, open(restored(out, path), "rb") as b:
        assert a.read() == b.read()
    assert run_check(repo, read_data=True).ok


def test_sparse_probe_errors_fall_back_to_reading(repo, tmp_path, monkeypatch):
    import errno

    src = tmp_path / "s"
    src.mkdir()
    path = src / "img"
    with open(path, "wb") as f:
        f.truncate(4 * 1024 * 1024)
        f.seek(2 * 1024 * 1024)
        f.write(b"data in the middle")
    real_lseek = os.lseek

    def no_seek_data(fd, pos, how):
        if how in (os.SEEK_DATA, os.SEEK_HOLE):
            raise OSError(errno.EINVAL, "not supported")
        return real_lseek(fd, pos, how)

    monkeypatch.setattr(os, "lseek", no_seek_data)
    run_backup(repo, [str(src)])
    monkeypatch.undo()
    out = tmp_path / "out"
    run_restore(repo, "latest", out)
    with open(path, "rb") as a, open(restored(out, path), "rb") as b:
        assert a.read() == b.read()


def test_restore_and_check_honour_cancel(repo, tmp_path):
    from agent.engine.errors import CheckCancelled, RestoreCancelled

    src = tmp_path / "s"
    src.mkdir()
    (src / "f").write_bytes(b"x" * 1000)
    run_backup(repo, [str(src)])
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(RestoreCancelled):
        run_restore(repo, "latest", tmp_path / "out", cancel=cancel)
    with pytest.raises(CheckCancelled):
        run_check(repo, read_data=True, cancel=cancel)


def test_huge_directory_tree_blob(repo, tmp_path):
    src = tmp_path / "big-dir"
    src.mkdir()
    names = {os.urandom(24).hex() for _ in range(4000)}
    for name in names:
        (src / name).write_bytes(b"")
    result = run_backup(repo, [str(src)])
    node = next(n for p, n in repo.walk(result.snapshot.tree) if p == os.fsencode(src))
    tree_size = repo.index.get(node.subtree).length
    assert tree_size > repo.chunker_params.max_size  # larger than a pack buffer's blob room
    out = tmp_path / "out"
    assert run_restore(repo, "latest", out).ok
    assert set(os.listdir(restored(out, src))) == {os.fsencode(n) for n in names}
    assert run_check(repo, read_data=True).ok


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a symlink another owner")
def test_restore_never_follows_another_users_symlink(repo, tmp_path):
    """In-place restore as root: a user who replaced a backed-up directory
    with a link to a system directory must not get files written there."""
    import pwd

    src = tmp_path / "home" / "ana" / "Documents"
    src.mkdir(parents=True)
    (src / "passwd").write_bytes(b"ana's own file")
    run_backup(repo, [str(src)])
    victim = tmp_path / "etc"
    victim.mkdir()
    for p in src.iterdir():
        p.unlink()
    src.rmdir()
    os.symlink(victim, src)
    nobody = pwd.getpwnam("nobody").pw_uid
    os.lchown(src, nobody, nobody)
    res = run_restore(repo, "latest", "/", overwrite="always")
    assert not (victim / "passwd").exists()
    assert res.errors and all("symbolic link" in e.message for e in res.errors)
    # a link of our own (like /home -> /data/home) is followed
    os.lchown(src, 0, 0)
    res = run_restore(repo, "latest", "/", overwrite="always")
    assert res.ok and (victim / "passwd").read_bytes() == b"ana's own file"


def test_hard_links_are_restored_as_links(repo, tmp_path):
    src = tmp_path / "s"
    (src / "a").mkdir(parents=True)
    (src / "a" / "one").write_bytes(b"shared inode")
    os.link(src / "a" / "one", src / "two")
    result = run_backup(repo, [str(src)])
    nodes = {p: n for p, n in repo.walk(result.snapshot.tree)}
    assert nodes[os.fsencode(src / "two")].link_to == os.fsencode(src / "a" / "one")
    out = tmp_path / "out"
    assert run_restore(repo, "latest", out).ok
    one, two = restored(out, src / "a" / "one"), restored(out, src / "two")
    assert os.stat(one).st_ino == os.stat(two).st_ino
    assert read(two) == b"shared inode"
    # restoring only one of the names gives a plain file
    only = tmp_path / "only"
    assert run_restore(repo, "latest", only, include=[str(src / "two")]).ok
    assert read(restored(only, src / "two")) == b"shared inode"


@pytest.mark.skipif(not hasattr(os, "setxattr"), reason="no xattrs on this platform")
def test_extended_attributes_roundtrip(repo, tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    f = src / "tagged.txt"
    f.write_bytes(b"x")
    try:
        os.setxattr(f, "user.cairn.test", b"\x00binary\xff")
        os.setxattr(src, "user.dir", b"on a directory")
    except OSError as exc:
        pytest.skip(f"filesystem without user xattrs: {exc}")
    run_backup(repo, [str(src)])
    out = tmp_path / "out"
    assert run_restore(repo, "latest", out).ok
    assert os.getxattr(restored(out, f), "user.cairn.test") == b"\x00binary\xff"
    assert os.getxattr(restored(out, src), "user.dir") == b"on a directory"
