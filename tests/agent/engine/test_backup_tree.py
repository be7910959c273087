"""The backup's tree writer (agent/engine/backup_tree.py): typed nodes in,
the format's tree bytes out, in post-order, and a parent's tree reused."""

from __future__ import annotations

from concurrent.futures import Future

from agent.engine import paths as pathmap
from agent.engine.backup_stats import Tally
from agent.engine.backup_tree import DirJob, TreeWriter
from agent.engine.backup_upload import PackUploader
from agent.engine.tree import DIR, FILE, Node, decode_nodes, encode_tree


def done(value) -> Future:
    fut: Future = Future()
    fut.set_result(value)
    return fut


def writer(repo, finish_small=None):
    up = PackUploader(repo, Tally(pathmap.current(), None), 2)
    return up, TreeWriter(up, up.tally.stats, finish_small or (lambda *a: True))


def test_trees_are_written_children_first_with_the_formats_bytes(repo):
    up, trees = writer(repo)
    sub = Node(b"docs", DIR, mode=0o755)
    root = DirJob(b"", b"/", None, [])
    root.nodes.append(sub)
    child = DirJob(b"/docs", b"/docs", sub, [])
    f = Node(b"a.txt", FILE, mode=0o644, size=3)
    child.nodes.append(f)
    chunk = up.submit_chunk(b"abc")
    child.pending.append((f, [chunk], None))
    trees.listed(child)
    trees.listed(root)
    trees.finalize_ready(block=True)
    up.drain(abort=False)
    up.close()

    assert f.content == [repo.blob_id(b"abc")]
    assert sub.subtree == repo.blob_id(encode_tree([f]))
    assert trees.root == repo.blob_id(encode_tree([sub]))
    [stored] = decode_nodes(repo.read_blob(trees.root))
    assert stored == sub
    assert up.tally.stats.dirs_new == 1 and up.tally.stats.tree_blobs_added == 2


def test_a_small_file_the_finisher_drops_is_left_out(repo):
    kept, gone = Node(b"kept", FILE), Node(b"gone", FILE)

    def finish(node, result, small):
        node.content = [] if result == "ok" else None
        return result == "ok"

    up, trees = writer(repo, finish)
    job = DirJob(b"", b"/", None, [])
    job.nodes += [kept, gone]
    job.pending += [(kept, [done("ok")], ()), (gone, [done("skipped")], ())]
    trees.listed(job)
    trees.finalize_ready(block=True)
    up.drain(abort=False)
    up.close()
    assert decode_nodes(repo.read_blob(trees.root)) == [kept]


def test_a_directory_as_in_the_parent_reuses_its_tree_without_storing(repo):
    up, trees = writer(repo)
    f = Node(b"a.txt", FILE, size=0, content=[])
    parent_tree = up.store_tree(encode_tree([f]))
    up.drain(abort=False)
    up.close()

    up, trees = writer(repo)
    same = Node(b"dir", DIR)
    job = DirJob(b"/dir", b"/dir", same, [], None, {f.name: f}, parent_tree)
    job.nodes.append(Node(b"a.txt", FILE, size=0, content=[]))
    changed = Node(b"dir2", DIR)
    job2 = DirJob(b"/dir2", b"/dir2", changed, [], None, {f.name: f}, parent_tree)
    job2.nodes.append(Node(b"a.txt", FILE, size=0, content=[], mode=0o600))
    trees.listed(job)
    trees.listed(job2)
    trees.finalize_ready(block=True)
    up.drain(abort=False)
    up.close()
    assert same.subtree == parent_tree
    assert changed.subtree != parent_tree
    stats = up.tally.stats
    assert stats.dirs_unchanged == 1 and stats.dirs_changed == 1
    assert stats.tree_blobs_added == 1  # only the changed directory's
