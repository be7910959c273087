"""The backup's tree writer: one tree blob per directory, in post-order.

Like restic's tree saver: a directory's tree is written when all its files'
chunks are stored, without draining the pipeline at each directory. The walk
hands over each listed directory (:class:`DirJob`); ``finalize_ready``
writes those whose files are done, in the order they were listed, so a
parent always follows its subdirectories. Nodes are typed
(:class:`tree.Node`); the encoding is the format's, byte for byte.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from concurrent.futures import Future

from agent.engine.backup_stats import BackupStats
from agent.engine.backup_upload import PackUploader
from agent.engine.tree import Node, encode_tree

#: directories whose files are still in the pipeline before the walk waits
MAX_PENDING_DIRS = 4096

#: fills a small file's node from its worker's result; False drops the node
SmallFinisher = Callable[[Node, object, tuple], bool]


class DirJob:
    """A directory being backed up: its nodes, and files still in flight."""

    __slots__ = (
        "path",
        "real",
        "node",
        "nodes",
        "pending",
        "entries",
        "i",
        "plan",
        "prev",
        "prev_tree",
        "_done",
    )

    def __init__(self, path, real, node, entries, plan=None, prev=None, prev_tree=None):
        self.path: bytes = path  # original path ("" for the root)
        self.real: bytes = real  # path to read from
        self.node: Node | None = node  # this directory's node in its parent
        self.nodes: list[Node] = []
        #: (node, futures, small-file context or None), resolved at finalize
        self.pending: list[tuple[Node, list[Future], tuple | None]] = []
        self.entries = entries  # [(name, DirEntry | None)]
        self.i = 0
        self.plan = plan  # for directories above the sources: names to visit
        self.prev: dict[bytes, Node] | None = prev  # parent snapshot's nodes by name
        self.prev_tree: bytes | None = prev_tree  # parent snapshot's tree id for this dir
        self._done = 0  # futures known to be done (cursor into flattened pending)

    def all_done(self) -> bool:
        for item in self.pending[self._done :]:
            if not all(f.done() for f in item[1]):
                return False
            self._done += 1
        return True

    def first_not_done(self) -> Future | None:
        for item in self.pending[self._done :]:
            for f in item[1]:
                if not f.done():
                    return f
        return None


class TreeWriter:
    def __init__(self, uploader: PackUploader, stats: BackupStats, finish_small: SmallFinisher):
        self.uploader = uploader
        self.stats = stats
        self.finish_small = finish_small
        self.root: bytes | None = None  # the root tree's id, once written
        self._ready: collections.deque[DirJob] = collections.deque()

    def listed(self, job: DirJob) -> None:
        """The walk is done with ``job``'s entries: write it when its files are."""
        job.entries = None
        self._ready.append(job)
        self.finalize_ready(block=len(self._ready) > MAX_PENDING_DIRS)

    def finalize_ready(self, block: bool) -> None:
        """Write the trees whose files are stored; with ``block``, all of them."""
        while self._ready:
            job = self._ready[0]
            if not job.all_done():
                if not block:
                    break
                pending = job.first_not_done()  # None if it finished meanwhile
                if pending is not None:
                    pending.result()  # waits; raises a worker's error
                continue
            self._ready.popleft()
            self._finalize(job)

    def _finalize(self, job: DirJob) -> None:
        dropped: set[int] = set()
        for node, futures, small in job.pending:
            if small is None:
                node.content = [f.result() for f in futures]
            elif not self.finish_small(node, futures[0].result(), small):
                dropped.add(id(node))
        nodes = [n for n in job.nodes if id(n) not in dropped] if dropped else job.nodes
        if self._same_as_parent(job, nodes):
            tree_id = job.prev_tree
        else:
            tree_id = self.uploader.store_tree(encode_tree(nodes))
        if job.node is None:
            self.root = tree_id
            return
        job.node.subtree = tree_id
        if job.prev_tree is None:
            self.stats.dirs_new += 1
        elif job.prev_tree == tree_id:
            self.stats.dirs_unchanged += 1
        else:
            self.stats.dirs_changed += 1

    def _same_as_parent(self, job: DirJob, nodes: list[Node]) -> bool:
        """Whether the directory's nodes are its parent snapshot's, so its
        tree is the parent's tree, already stored. Encoding it again would
        give the same bytes (a tree re-encodes byte for byte) and the same
        id: skipping that is what keeps an unchanged re-run as fast with
        typed nodes as it was with the decoded dicts."""
        prev = job.prev
        if job.prev_tree is None or prev is None or len(prev) != len(nodes):
            return False
        for node in nodes:
            if prev.get(node.name) != node:
                return False
        return self.uploader.repo.index.reusable(job.prev_tree)
