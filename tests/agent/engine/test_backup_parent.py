"""The backup's parent snapshot (agent/engine/backup_parent.py): which one,
its trees as typed nodes, and when a file's copy there is still good."""

from __future__ import annotations

import os
import time

from agent.engine import paths as pathmap
from agent.engine.backup import run_backup
from agent.engine.backup_parent import RACY_MARGIN_NS, ParentTrees, find_parent
from agent.engine.tree import FILE, Node


def test_auto_prefers_this_hosts_snapshot_of_the_same_paths(repo, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    of_a = run_backup(repo, [str(a)], hostname="pc1").snapshot_id
    run_backup(repo, [str(b)], hostname="pc1")
    run_backup(repo, [str(a)], hostname="pc2")
    flavour = pathmap.current()
    assert find_parent(repo, "auto", "pc1", [str(a)], flavour).id == of_a
    assert find_parent(repo, of_a[:8], "pc9", [], flavour).id == of_a
    assert find_parent(repo, None, "pc1", [str(a)], flavour) is None
    assert find_parent(repo, "auto", "pc3", [str(a)], flavour) is None


def test_parent_trees_are_typed_nodes_and_a_missing_one_is_none(repo, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("hello")
    snap = run_backup(repo, [str(src)]).snapshot
    parents = ParentTrees(repo, snap)
    node = parents.root()
    while node and b"f.txt" not in node:  # down the planned directories to src
        [only] = node.values()
        node = parents.by_name(only.subtree)
    assert isinstance(node[b"f.txt"], Node) and node[b"f.txt"].size == 5
    assert parents.by_name(b"\x00" * 32) is None  # unknown: read again, no failure
    assert ParentTrees(repo, None).root() is None


def test_unchanged_needs_the_same_stat_an_old_enough_change_and_stored_chunks(repo, tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"hello")
    old = time.time() - 3600
    os.utime(path, (old, old))
    st = os.stat(path)
    blob_id = repo.blob_id(b"hello")
    snap = run_backup(repo, [str(tmp_path)]).snapshot  # stores the chunk
    parents = ParentTrees(repo, snap)
    prev = Node(
        b"f.txt", FILE, size=5, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, ino=st.st_ino
    )
    prev.content = [blob_id]
    assert parents.unchanged(prev, st)
    assert not parents.unchanged(None, st)
    flagged = Node(**{**_fields(prev), "flags": ["changed-during-read"]})
    assert not parents.unchanged(flagged, st)
    assert not parents.unchanged(Node(**{**_fields(prev), "size": 6}), st)
    assert not parents.unchanged(Node(**{**_fields(prev), "content": [b"\x01" * 32]}), st)
    racy = ParentTrees(repo, snap)
    racy.start_ns = st.st_mtime_ns + RACY_MARGIN_NS  # changed around the parent's start
    assert not racy.unchanged(prev, st)


def _fields(node: Node) -> dict:
    return {name: getattr(node, name) for name in Node.__slots__}
