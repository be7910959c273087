"""Exclude patterns of the walk (agent/engine/walker.py)."""

from __future__ import annotations

from agent.engine.walker import ExcludeMatcher


def test_exclude_matcher():
    m = ExcludeMatcher(["*.tmp", "/home/*/.cache", "node_modules"])
    assert m.excluded(b"/x/a.tmp", b"a.tmp")
    assert m.excluded(b"/home/ana/.cache", b".cache")
    assert not m.excluded(b"/home/ana/.cache2", b".cache2")
    assert m.excluded(b"/src/node_modules", b"node_modules")
    assert not m.excluded(b"/src/main.py", b"main.py")
