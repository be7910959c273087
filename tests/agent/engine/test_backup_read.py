"""The backup's file reader (agent/engine/backup_read.py): what a read
stores, when it is trusted, and what it reports when it cannot read."""

from __future__ import annotations

import os
import time

import pytest

from agent.engine import paths as pathmap
from agent.engine.backup_read import GREW, SKIPPED, FileReader
from agent.engine.backup_stats import Tally
from agent.engine.backup_upload import PackUploader
from agent.engine.errors import BackupCancelled


@pytest.fixture
def reader(repo):
    up = PackUploader(repo, Tally(pathmap.current(), None), 2)
    fr = FileReader(up, up.tally, repo.chunker_params, read_retries=0, check=lambda: None)
    yield fr
    up.close()


def settled(path, content: bytes) -> bytes:
    """A file last changed well before the read (its ctime past every margin)."""
    path.write_bytes(content)
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    time.sleep(0.3)  # ctime is the kernel's: only waiting ages it (margin: 20 ms here)
    return os.fsencode(path)


def content_of(reader: FileReader, read) -> bytes:
    reader.uploader.drain(abort=False)
    repo = reader.uploader.repo
    return b"".join(repo.read_blob(f.result()) for f in read.futures)


def test_a_quiet_file_is_read_once_chunked_and_stored(reader, tmp_path):
    data = os.urandom(600_000)  # several 8-128 KiB chunks
    path = settled(tmp_path / "big.bin", data)
    read = reader.read_file(path, path)
    assert read is not None and not read.changed and len(read.futures) > 2
    assert read.stat.st_size == len(data)
    assert content_of(reader, read) == data
    assert reader.tally.stats.bytes_read == len(data) and reader.tally.warnings == []


def test_a_just_written_file_is_not_trusted_unless_frozen(reader, tmp_path):
    path = os.fsencode(tmp_path / "hot.bin")
    (tmp_path / "hot.bin").write_bytes(os.urandom(100_000))
    live = reader.read_file(path, path)  # read_retries=0: one attempt, kept flagged
    assert live.changed
    assert [w.kind for w in reader.tally.warnings] == ["changed-during-read"]
    frozen = reader.read_file(path, path, frozen=True)  # a read-only snapshot cannot change
    assert not frozen.changed and len(reader.tally.warnings) == 1


def test_small_files_vanished_or_grown(reader, tmp_path):
    small = settled(tmp_path / "small.txt", b"hello")
    blob_id, st, changed = reader.read_small(small, small)
    assert not changed and st.st_size == 5
    reader.uploader.drain(abort=False)
    assert reader.uploader.repo.read_blob(blob_id) == b"hello"

    gone = os.fsencode(tmp_path / "gone.txt")
    assert reader.read_small(gone, gone) is SKIPPED
    assert reader.tally.warnings[-1].kind == "vanished"

    grown = tmp_path / "grown.bin"
    grown.write_bytes(os.urandom(reader.min_chunk + 1))
    assert reader.read_small(os.fsencode(grown), os.fsencode(grown)) is GREW


def test_holes_of_a_sparse_file_are_not_read(reader, tmp_path):
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(4 * 1024 * 1024)  # 4 MiB of hole
        f.seek(1024 * 1024)
        f.write(b"data" * 1000)
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    time.sleep(0.3)
    read = reader.read_file(os.fsencode(path), os.fsencode(path))
    assert read is not None and not read.changed
    # far less read than the apparent size: whole max-size holes were skipped
    assert reader.tally.stats.bytes_read < 2 * 1024 * 1024
    assert content_of(reader, read) == path.read_bytes()


def test_a_cancelled_backup_stops_mid_file(repo, tmp_path):
    up = PackUploader(repo, Tally(pathmap.current(), None), 2)

    def cancelled():
        raise BackupCancelled("backup cancelled")

    fr = FileReader(up, up.tally, repo.chunker_params, read_retries=0, check=cancelled)
    path = os.fsencode(tmp_path / "big.bin")
    (tmp_path / "big.bin").write_bytes(os.urandom(600_000))
    with pytest.raises(BackupCancelled):
        fr.read_file(path, path)
    up.drain(abort=True)
    up.close()
