"""The APFS provider against recorded macOS tool outputs."""

from __future__ import annotations

import pytest

from agent.snapshots import OpenFileMode, point_in_time
from agent.snapshots.base import SnapshotError, SnapshotRequiredError
from agent.snapshots.ledger import Ledger
from agent.snapshots.macos_apfs import ApfsProvider
from tests.agent.open_files import recorded as rec

DOCS = "/Users/ana/Documents"
NAME = "com.apple.TimeMachine.2026-11-28-094501.local"


def provider(tmp_path, runner, **kw):
    kw.setdefault("platform", "darwin")
    kw.setdefault("is_root", lambda: True)
    return ApfsProvider(tmp_path / "state", runner=runner, **kw)


def happy_script(extra=()):
    return [
        (["df", "-P", DOCS], (0, rec.MAC_DF_DATA, "")),
        (["tmutil", "localsnapshot"], (0, rec.TMUTIL_LOCALSNAPSHOT, "")),
        (["tmutil", "listlocalsnapshots", "/System/Volumes/Data"], (0, rec.TMUTIL_LIST, "")),
        (["mount_apfs"], (0, "", "")),
        *extra,
        (["umount"], (0, "", "")),
        (["tmutil", "deletelocalsnapshots", "2026-11-28-094501"], (0, rec.TMUTIL_DELETED, "")),
    ]


def test_snapshot_mounted_read_only_and_firmlinked_paths_translated(tmp_path, recorded):
    runner = recorded(happy_script())
    p = provider(tmp_path, runner)
    with p.open([DOCS]) as view:
        mnt = str(tmp_path / "state" / "apfs-snapshots" / "2026-11-28-094501-0")
        assert (
            view.translate(DOCS + "/Budget 2027.xlsx")
            == mnt + "/Users/ana/Documents/Budget 2027.xlsx"
        )
        assert view.ids == ["2026-11-28-094501"]
        assert Ledger(tmp_path / "state").entries("apfs")[0]["mountpoints"] == [mnt]
    [mount] = runner.ran("mount_apfs")
    assert mount == ("mount_apfs", "-o", "rdonly,nobrowse", "-s", NAME, "/System/Volumes/Data", mnt)
    assert runner.ran("umount") == [("umount", mnt)]
    assert runner.ran("tmutil", "deletelocalsnapshots")
    assert Ledger(tmp_path / "state").entries() == []
    assert not (tmp_path / "state" / "apfs-snapshots" / "2026-11-28-094501-0").exists()


def test_missing_full_disk_access_is_named_and_the_snapshot_deleted(tmp_path, recorded):
    runner = recorded([
        (["df", "-P", DOCS], (0, rec.MAC_DF_DATA, "")),
        (["tmutil", "localsnapshot"], (0, rec.TMUTIL_LOCALSNAPSHOT, "")),
        (["tmutil", "listlocalsnapshots"], (0, rec.TMUTIL_LIST, "")),
        (["mount_apfs"], (75, "", rec.MOUNT_APFS_NO_FDA)),
        (["umount"], (1, "", "umount: /x: not currently mounted\n")),
        (["tmutil", "deletelocalsnapshots"], (0, rec.TMUTIL_DELETED, "")),
    ])  # fmt: skip
    with (
        pytest.raises(SnapshotError, match="Full Disk Access"),
        provider(tmp_path, runner).open([DOCS]),
    ):
        pass
    assert runner.ran("tmutil", "deletelocalsnapshots"), "the snapshot taken is deleted again"
    assert Ledger(tmp_path / "state").entries() == []


def test_required_mode_reports_full_disk_access_when_tmutil_is_refused(tmp_path, recorded):
    runner = recorded([
        (["df", "-P", DOCS], (0, rec.MAC_DF_DATA, "")),
        (["mount"], (0, rec.MAC_MOUNT, "")),
        (["df", "-P", DOCS], (0, rec.MAC_DF_DATA, "")),
        (["tmutil", "localsnapshot"], (1, "", rec.TMUTIL_NO_FDA)),
    ])  # fmt: skip
    run = point_in_time([DOCS], OpenFileMode.REQUIRED, providers=[provider(tmp_path, runner)])
    with pytest.raises(SnapshotRequiredError, match="Full Disk Access"), run:
        pass
    assert Ledger(tmp_path / "state").entries() == []


def test_availability(tmp_path, recorded):
    runner = recorded([
        (["df", "-P", DOCS], (0, rec.MAC_DF_DATA, "")),
        (["mount"], (0, rec.MAC_MOUNT, "")),
        (["df", "-P", "/Volumes/USB STICK/photos"], (0, rec.MAC_DF_USB, "")),
        (["mount"], (0, rec.MAC_MOUNT, "")),
    ])  # fmt: skip
    p = provider(tmp_path, runner)
    assert p.available([DOCS])
    verdict = p.available(["/Volumes/USB STICK/photos"])
    assert not verdict and "msdos" in verdict.reason and "not APFS" in verdict.reason
    assert "root" in provider(tmp_path, runner, is_root=lambda: False).available([DOCS]).reason
    assert "only on macOS" in provider(tmp_path, runner, platform="linux").available([DOCS]).reason


def test_stale_snapshot_of_a_crashed_run_is_removed(tmp_path, recorded):
    # What a run that died while reading left behind: its ledger entry.
    mnt = str(tmp_path / "state" / "apfs-snapshots" / "2026-11-28-094501-0")
    Ledger(tmp_path / "state").add("apfs", "2026-11-28-094501", mountpoints=[mnt])
    runner = recorded([
        (["umount", mnt], (0, "", "")),
        (["tmutil", "deletelocalsnapshots", "2026-11-28-094501"], (0, rec.TMUTIL_DELETED, "")),
    ])  # fmt: skip
    lines = provider(tmp_path, runner).cleanup_stale()
    assert lines == ["apfs: removed stale local snapshot 2026-11-28-094501"]
    assert runner.ran("tmutil", "deletelocalsnapshots") == [
        ("tmutil", "deletelocalsnapshots", "2026-11-28-094501")
    ]
    assert Ledger(tmp_path / "state").entries() == []
