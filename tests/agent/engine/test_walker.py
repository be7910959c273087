"""The walk's parts (agent/engine/walker.py): exclude patterns, sources and
their plan, nodes from stat, extended attributes, the totals scanner."""

from __future__ import annotations

import os
import stat

import pytest

from agent.engine import paths as pathmap
from agent.engine.tree import DIR, FIFO, FILE, SYMLINK
from agent.engine.walker import (
    SOURCE,
    ExcludeMatcher,
    OwnerNames,
    node_type,
    normalise_sources,
    plan_sources,
    read_xattrs,
    scan_totals,
)

try:
    import pwd
except ImportError:  # pragma: no cover
    pwd = None


def test_exclude_matcher():
    m = ExcludeMatcher(["*.tmp", "/home/*/.cache", "node_modules"])
    assert m.excluded(b"/x/a.tmp", b"a.tmp")
    assert m.excluded(b"/home/ana/.cache", b".cache")
    assert not m.excluded(b"/home/ana/.cache2", b".cache2")
    assert m.excluded(b"/src/node_modules", b"node_modules")
    assert not m.excluded(b"/src/main.py", b"main.py")


def test_sources_become_repository_paths_once_and_plan_the_dirs_above():
    flavour = pathmap.flavour_named("posix")
    sources = normalise_sources(["/home/ana/Documents", "/home/ana/Documents", "/srv"], flavour)
    assert sources == [b"/home/ana/Documents", b"/srv"]
    assert plan_sources(sources) == {b"home": {b"ana": {b"Documents": SOURCE}}, b"srv": SOURCE}
    # a source below another is covered by it
    assert plan_sources([b"/home/ana", b"/home/ana/Documents"]) == {b"home": {b"ana": SOURCE}}


def test_a_node_from_stat_has_the_metadata_and_type(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    os.symlink("f", tmp_path / "l")
    os.mkfifo(tmp_path / "p")
    st = os.lstat(tmp_path / "f")
    node = OwnerNames().node(b"f", node_type(st.st_mode), st)
    assert node.type == FILE and node.mode == stat.S_IMODE(st.st_mode)
    assert (node.uid, node.mtime_ns, node.ctime_ns, node.ino) == (
        st.st_uid,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
    )
    assert node.user == (pwd.getpwuid(st.st_uid).pw_name if pwd else None)
    assert node_type(os.lstat(tmp_path / "l").st_mode) == SYMLINK
    assert node_type(os.lstat(tmp_path / "p").st_mode) == FIFO
    assert node_type(os.lstat(tmp_path).st_mode) == DIR
    assert node.size is None and node.content is None  # the file reader fills those


def test_xattrs_are_read_as_bytes_or_none(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    try:
        os.setxattr(tmp_path / "f", "user.note", b"\x00\xff")
    except OSError:
        pytest.skip("no user xattrs on this filesystem")
    assert read_xattrs(os.fsencode(tmp_path / "f")) == {"user.note": b"\x00\xff"}
    (tmp_path / "g").write_bytes(b"x")
    assert read_xattrs(os.fsencode(tmp_path / "g")) is None


def test_the_scanner_counts_what_the_backup_will_walk(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.txt").write_bytes(b"12345")
    (tmp_path / "a" / "skip.tmp").write_bytes(b"123")
    (tmp_path / "b.txt").write_bytes(b"1")
    seen = []
    flavour = pathmap.current()
    src = pathmap.to_repo(str(tmp_path), flavour)
    totals = scan_totals(
        [(src, os.fsencode(tmp_path))],
        ExcludeMatcher(["*.tmp"]),
        flavour,
        lambda files, size: seen.append((files, size)),
        lambda: False,
    )
    assert totals == (2, 6) and seen[-1] == (2, 6)
    assert scan_totals(
        [(src, os.fsencode(tmp_path))], ExcludeMatcher(), flavour, lambda *a: None, lambda: True
    ) == (0, 0)  # stopped before any directory
