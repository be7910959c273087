"""Property-based round trips: any tree backs up and restores byte for byte,
across incremental snapshots, and check stays clean."""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.engine.backup import run_backup
from agent.engine.check import run_check
from agent.engine.restore import run_restore
from tests.agent.conftest import make_repo
from tests.agent.helpers import restored, snapshot_of_disk

# Names: any bytes but NUL and "/", not "." or ".."; includes invalid UTF-8
# and newlines on purpose.
names = st.binary(min_size=1, max_size=12).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)
shared_block = os.urandom(40_000)
contents = st.one_of(
    st.binary(max_size=2000),
    st.binary(max_size=64).map(lambda b: b * 1000),  # compressible, multi-chunk
    st.integers(0, 3).map(lambda n: shared_block * n),  # dedup across files
    st.integers(1, 70_000).map(os.urandom),  # incompressible
)
leaf = st.one_of(
    contents.map(lambda c: ("file", c, 0o644)),
    st.tuples(contents, st.sampled_from([0o600, 0o755, 0o444])).map(lambda t: ("file", *t)),
    names.map(lambda t: ("link", t)),
)
trees = st.recursive(
    st.dictionaries(names, leaf, max_size=5),
    lambda children: st.dictionaries(names, st.one_of(leaf, children), max_size=5),
    max_leaves=25,
)


def write_tree(root: bytes, tree: dict) -> None:
    os.makedirs(root, exist_ok=True)
    for name, item in tree.items():
        path = os.path.join(root, name)
        if isinstance(item, dict):
            write_tree(path, item)
        elif item[0] == "file":
            with open(path, "wb") as f:
                f.write(item[1])
            os.chmod(path, item[2])
        else:
            os.symlink(item[1], path)


def mutate(tree: dict, data: st.DataObject) -> dict:
    out = {}
    for name, item in tree.items():
        choice = data.draw(st.sampled_from(["keep", "keep", "drop", "change"]))
        if choice == "drop":
            continue
        if isinstance(item, dict):
            out[name] = mutate(item, data) if choice == "change" else item
        elif choice == "change" and item[0] == "file":
            out[name] = ("file", item[1] + b"!", item[2])
        else:
            out[name] = item
    if data.draw(st.booleans()):
        out[data.draw(names)] = data.draw(leaf)
    return out


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(tree=trees, data=st.data())
def test_random_trees_roundtrip_across_snapshots(tree, data):
    base = tempfile.mkdtemp(prefix="cairn-prop-").encode()
    try:
        repo = make_repo(os.path.join(base, b"repo"))
        src = os.path.join(base, b"src")
        write_tree(src, tree)
        before = snapshot_of_disk(src)
        first = run_backup(repo, [src])
        assert first.warnings == []

        shutil.rmtree(src)
        write_tree(src, mutate(tree, data))
        after = snapshot_of_disk(src)
        second = run_backup(repo, [src])

        for snap, expected, name in ((first, before, b"a"), (second, after, b"b")):
            out = os.path.join(base, name)
            result = run_restore(repo, snap.snapshot_id, out)
            assert result.ok, result.errors
            assert snapshot_of_disk(restored(out, src)) == expected
        assert run_check(repo, read_data=True).ok
    finally:
        for dirpath, dirnames, _ in os.walk(base):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
        shutil.rmtree(base, ignore_errors=True)
