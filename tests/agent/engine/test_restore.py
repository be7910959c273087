"""The restore's units on their own: options, the pack fetcher's read plan,
the destinations' name gate (the whole restore is in test_backup_restore.py
and test_restore_safety.py)."""

from __future__ import annotations

import os
import types

import pytest

from agent.engine import paths as pathmap
from agent.engine.index import IndexEntry
from agent.engine.restore import RestoreOptions
from agent.engine.restore_dest import Destinations
from agent.engine.restore_fetch import COALESCE_GAP, plan_reads

KiB = 1024


def test_options_normalise_and_refuse():
    assert RestoreOptions(overwrite=True).overwrite == "always"
    assert RestoreOptions(overwrite=False, include=["a", "b"]).include == ("a", "b")
    assert RestoreOptions().restore_owner == (os.geteuid() == 0)
    assert RestoreOptions(restore_owner=False).restore_owner is False
    with pytest.raises(ValueError, match="overwrite must be one of"):
        RestoreOptions(overwrite="sometimes")


def fake_repo(blobs: dict[bytes, tuple[str, int, int]]):
    entries = {
        b: IndexEntry((p, 0, 0, off, length, length)) for b, (p, off, length) in blobs.items()
    }
    return types.SimpleNamespace(index=entries)


def test_neighbouring_blobs_of_a_pack_are_one_read_up_to_the_range_limit():
    blobs = {
        b"a": ("p1", 0, 100 * KiB),
        b"b": ("p1", 100 * KiB + COALESCE_GAP, 100 * KiB),  # gap at the limit: same read
        b"c": ("p1", 2000 * KiB, 10 * KiB),  # far: a read of its own
        b"d": ("p2", 0, 10 * KiB),  # another pack
        b"e": ("p1", 2010 * KiB, 600 * KiB),  # adjacent to c, but past max_range with it
    }
    reads = plan_reads(fake_repo(blobs), list(blobs), max_range=512 * KiB)
    got = sorted((pack, [b[2] for b in group]) for pack, group in reads)
    assert got == [("p1", [b"a", b"b"]), ("p1", [b"c"]), ("p1", [b"e"]), ("p2", [b"d"])]
    one = plan_reads(fake_repo(blobs), list(blobs), max_range=64 * 1024 * KiB)
    got = sorted((p, [b[2] for b in g]) for p, g in one)
    assert got == [("p1", [b"a", b"b"]), ("p1", [b"c", b"e"]), ("p2", [b"d"])]


def test_the_name_gate_refuses_unsafe_and_repeated_names(tmp_path):
    issues = []
    posix = pathmap.flavour_named("posix")
    dests = Destinations(os.fsencode(tmp_path), posix, posix, lambda *a, **k: issues.append(a[:3]))
    seen: set[bytes] = set()
    taken: dict[str, int] = {}
    assert dests.name_for(b"ok", b"/d", seen, taken) == b"ok"
    for bad in (b"..", b".", b"", b"a/b", b"n\0ul", b"ok"):
        assert dests.name_for(bad, b"/d", seen, taken) is None
    assert [kind for kind, _path, _msg in issues] == ["unsafe-name"] * 6
    assert "second entry" in issues[-1][2]
    dest = dests.place(os.fsencode(tmp_path), b"/d/ok", b"ok")
    assert dest == os.fsencode(tmp_path / "ok") and dests[b"/d/ok"] == dest
