"""The chooser: which provider takes which source, and the policy's modes."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from agent.snapshots import (
    OpenFileMode,
    SnapshotError,
    SnapshotProvider,
    SnapshotRequiredError,
    SnapshotView,
    cleanup_stale_snapshots,
    default_providers,
    point_in_time,
)
from agent.snapshots.base import YES, no


class Fake(SnapshotProvider):
    def __init__(self, name, covers, fail=None, release_warning=None):
        self.name, self.covers, self.fail, self.release_warning = (
            name,
            covers,
            fail,
            release_warning,
        )
        self.opened, self.released = [], 0

    def available(self, paths):
        bad = [p for p in paths if not p.startswith(self.covers)]
        return no(f"{bad[0]} is not under {self.covers}") if bad else YES

    @contextmanager
    def open(self, paths):
        self.opened.append(list(paths))
        if self.fail:
            raise SnapshotError(self.fail)
        view = SnapshotView(self.name, {self.covers: f"/snap/{self.name}"})
        try:
            yield view
        finally:
            self.released += 1
            if self.release_warning:
                view.warnings.append(self.release_warning)

    def cleanup_stale(self):
        if self.fail:
            raise RuntimeError("boom")
        return [f"{self.name}: nothing stale"]


def test_each_source_goes_to_a_provider_that_covers_it_the_rest_is_read_live():
    home = Fake("btrfs", "/home", release_warning="btrfs: slow delete")
    with point_in_time(["/home/ana", "/srv/data"], "preferred", providers=[home]) as pit:
        assert pit.translate("/home/ana/a.txt") == "/snap/btrfs/ana/a.txt"
        assert pit.translate("/srv/data/b.txt") == "/srv/data/b.txt"
        assert list(pit.live) == ["/srv/data"]
        assert pit.warnings == [
            "no snapshot for /srv/data: btrfs: /srv/data is not under /home; "
            "files read live with consistent-read checks"
        ]
        assert "btrfs snapshot of /home" in pit.describe()
    assert home.released == 1
    assert pit.warnings[-1] == "btrfs: slow delete", "release problems are reported after the block"


def test_a_failing_provider_hands_over_to_the_next():
    lvm = Fake("lvm", "/home", fail="volume group vg0 has 0 MiB free")
    btrfs = Fake("btrfs", "/home")
    with point_in_time(["/home/ana"], "required", providers=[lvm, btrfs]) as pit:
        assert pit.providers == ["btrfs"]
    assert lvm.opened == [["/home/ana"]] and btrfs.released == 1


def test_required_fails_before_reading_and_names_every_reason():
    lvm = Fake("lvm", "/home", fail="volume group vg0 has 0 MiB free")
    with (
        pytest.raises(SnapshotRequiredError) as caught,
        point_in_time(["/home/ana"], OpenFileMode.REQUIRED, providers=[lvm]),
    ):
        pytest.fail("the body must not run")
    assert "/home/ana (lvm: volume group vg0 has 0 MiB free)" in str(caught.value)


def test_required_names_what_no_provider_covers_before_snapshotting_anything():
    # Issue 15: /srv can never be covered, so no snapshot of /home is taken
    # only to be thrown away (real btrfs: test_busy_files_btrfs.py).
    lvm = Fake("lvm", "/home")
    with (
        pytest.raises(SnapshotRequiredError) as caught,
        point_in_time(["/home/ana", "/srv"], OpenFileMode.REQUIRED, providers=[lvm]),
    ):
        pytest.fail("the body must not run")
    assert "/srv (lvm: /srv is not under /home)" in str(caught.value)
    assert lvm.opened == []


def test_off_never_touches_a_provider_and_no_provider_means_fallback():
    p = Fake("btrfs", "/")
    with point_in_time(["/home"], "off", providers=[p]) as pit:
        assert pit.translate("/home/x") == "/home/x" and pit.warnings == []
    assert p.opened == []
    with point_in_time(["/home"], "preferred", providers=[]) as pit:
        assert "no snapshot mechanism" in pit.warnings[0]
    with pytest.raises(ValueError):
        point_in_time(["/home"], "sometimes").__enter__()


def test_stale_cleanup_survives_a_broken_provider(tmp_path):
    lines = cleanup_stale_snapshots(tmp_path, [Fake("a", "/", fail="x"), Fake("b", "/")])
    assert lines == ["a: stale snapshot cleanup failed: boom", "b: nothing stale"]
    assert [p.name for p in default_providers(tmp_path, "linux")] == ["btrfs", "lvm"]
    assert [p.name for p in default_providers(tmp_path, "win32")] == ["vss"]
    assert [p.name for p in default_providers(tmp_path, "darwin")] == ["apfs"]
    assert cleanup_stale_snapshots(tmp_path) == [], "nothing recorded, nothing to do"
