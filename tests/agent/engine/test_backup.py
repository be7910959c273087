"""run_backup composes the units from typed options (agent/engine/backup.py)."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from agent.engine.backup import BackupOptions, run_backup
from agent.engine.errors import BackupCancelled
from agent.engine.tree import decode_nodes


def test_options_are_frozen_typed_and_lists_become_tuples():
    options = BackupOptions(excludes=["*.tmp"], tags=["manual"])
    assert options.excludes == ("*.tmp",) and options.tags == ("manual",)
    assert options.parent == "auto" and options.read_retries == 3 and options.estimate
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.parent = None  # type: ignore[misc]


def test_options_and_keywords_back_up_alike(repo, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "keep.txt").write_text("keep")
    (src / "skip.tmp").write_text("skip")
    options = BackupOptions(excludes=("*.tmp",), tags=("t1",), hostname="pc1", parent=None)
    by_options = run_backup(repo, [str(src)], options)
    by_keywords = run_backup(
        repo, [str(src)], excludes=["*.tmp"], tags=["t1"], hostname="pc1", parent=None
    )
    assert by_options.snapshot.tree == by_keywords.snapshot.tree
    for result in (by_options, by_keywords):
        snap = result.snapshot
        assert (snap.tags, snap.excludes, snap.hostname) == (["t1"], ["*.tmp"], "pc1")
    names = {path.rsplit(b"/", 1)[-1] for path, _ in repo.walk(by_options.snapshot.tree)}
    assert b"keep.txt" in names and b"skip.tmp" not in names


def test_an_unchanged_rerun_reuses_every_tree_and_reads_nothing(repo, tmp_path):
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    for i in range(20):
        (src / "a" / "b" / f"f{i}.txt").write_text(f"file {i}")
    run_backup(repo, [str(src)])
    time.sleep(2.1)  # past the parent's racy margin
    second = run_backup(repo, [str(src)])
    third = run_backup(repo, [str(src)])
    assert third.snapshot.tree == second.snapshot.tree
    assert third.stats.files_unchanged == 20 and third.stats.bytes_read == 0
    assert third.stats.tree_blobs_added == 0 and third.stats.dirs_changed == 0
    # the reused trees decode as written
    assert decode_nodes(repo.read_blob(bytes.fromhex(third.snapshot.tree)))


def test_a_cancel_in_the_options_stops_the_backup(repo, tmp_path):
    (tmp_path / "f").write_text("x")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(BackupCancelled):
        run_backup(repo, [str(tmp_path)], BackupOptions(cancel=cancel))
