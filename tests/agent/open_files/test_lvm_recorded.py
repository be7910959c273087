"""The LVM provider against recorded LVM2/util-linux outputs (this machine
has no device-mapper, so LVM cannot run here for real)."""

from __future__ import annotations

import pytest

from agent.snapshots import OpenFileMode, point_in_time
from agent.snapshots.base import SnapshotError
from agent.snapshots.ledger import Ledger
from agent.snapshots.linux_lvm import LvmProvider
from tests.agent.open_files import recorded as rec

HOME = "/home/ana"


def locate(path=HOME, findmnt=rec.FINDMNT_LVM_HOME, lvs=(0, rec.LVS_HOME, "")):
    return [(["findmnt", "-n", "-J", "-o", "TARGET,SOURCE,FSTYPE", "-T", path], (0, findmnt, "")),
            (["lvs", "--reportformat", "json"], lvs)]  # fmt: skip


def lvcreate(argv):
    return 0, rec.LVCREATE_OK.format(name=argv[argv.index("--name") + 1]), ""


def test_snapshot_created_mounted_read_only_and_removed(tmp_path, recorded):
    runner = recorded([
        *locate(),
        (["lvcreate"], lvcreate),
        (["mount"], (0, "", "")),
        (["umount"], (0, "", "")),
        (["lvs", "--noheadings", "-o", "lv_attr"], (0, rec.LVS_ATTR_OK, "")),
        (["lvremove", "--yes"], lambda a: (0, rec.LVREMOVE_OK.format(name=a[-1]), "")),
    ])  # fmt: skip
    p = LvmProvider(tmp_path / "state", runner=runner)
    with p.open([HOME]) as view:
        [key] = view.ids
        assert key.startswith("vg0/cairn-home-")
        mnt = str(tmp_path / "state" / "lvm-snapshots" / key.split("/")[1])
        assert view.translate(HOME + "/thesis.odt") == mnt + "/ana/thesis.odt"
        assert Ledger(tmp_path / "state").entries("lvm")[0]["mountpoint"] == mnt
    [create] = runner.ran("lvcreate")
    # 10 % of the 100 GiB LV as copy-on-write space, read-only snapshot
    assert create == ("lvcreate", "--snapshot", "--permission", "r", "--name", key.split("/")[1],
                      "--size", "10737418240b", "vg0/home")  # fmt: skip
    [mount] = runner.ran("mount")
    assert mount == ("mount", "-t", "ext4", "-o", "ro,noload", f"/dev/{key}", mnt)
    assert runner.ran("lvremove") == [("lvremove", "--yes", key)]
    assert Ledger(tmp_path / "state").entries() == []


def test_overflowed_snapshot_is_reported(tmp_path, recorded):
    runner = recorded([
        *locate(), (["lvcreate"], lvcreate), (["mount"], (0, "", "")), (["umount"], (0, "", "")),
        (["lvs", "--noheadings"], (0, rec.LVS_ATTR_INVALID, "")), (["lvremove"], (0, "", "")),
    ])  # fmt: skip
    with LvmProvider(tmp_path, runner=runner).open([HOME]) as view:
        pass
    assert any("overflowed" in w for w in view.warnings)


def test_reasons_it_cannot_snapshot(tmp_path, recorded):
    def reason(script, path=HOME):
        verdict = LvmProvider(tmp_path, runner=recorded(script)).available([path])
        assert not verdict
        return verdict.reason

    assert "not an LVM logical volume" in reason(
        locate("/srv", rec.FINDMNT_PLAIN, (5, "", rec.LVS_NOT_LV)), "/srv"
    )
    assert "device-mapper" in reason(locate(lvs=(5, "", rec.LVS_NO_DM)))
    assert "128 MiB free" in reason(locate(lvs=(0, rec.LVS_HOME_FULL_VG, "")))
    assert "not installed" in reason(locate(lvs=(127, "", "No such file or directory: 'lvs'")))


def test_preferred_mode_falls_back_with_the_reason(tmp_path, recorded):
    runner = recorded(locate(lvs=(5, "", rec.LVS_NO_DM)))
    with point_in_time(
        [HOME], OpenFileMode.PREFERRED, providers=[LvmProvider(tmp_path, runner=runner)]
    ) as pit:
        assert pit.translate(HOME + "/x") == HOME + "/x"
    assert pit.warnings == [
        f"no snapshot for {HOME}: lvm: the kernel's device-mapper is not available, so LVM "
        "cannot snapshot; files read live with consistent-read checks"
    ]


def test_failed_mount_removes_the_snapshot(tmp_path, recorded):
    runner = recorded([
        *locate(), (["lvcreate"], lvcreate),
        (["mount"], (32, "", "mount: /x: wrong fs type, bad option, bad superblock on /dev/vg0/x\n")),
        (["umount"], (32, "", "umount: /x: not mounted.\n")),
        (["lvs", "--noheadings"], (0, rec.LVS_ATTR_OK, "")), (["lvremove"], (0, "", "")),
    ])  # fmt: skip
    with (
        pytest.raises(SnapshotError, match="wrong fs type"),
        LvmProvider(tmp_path / "s", runner=runner).open([HOME]),
    ):
        pass
    assert runner.ran("lvremove")
    assert Ledger(tmp_path / "s").entries() == []


def test_stale_snapshot_removed_on_next_start(tmp_path, recorded):
    Ledger(tmp_path).add("lvm", "vg0/cairn-home-1a2b3c4d", mountpoint=str(tmp_path / "m"))
    runner = recorded([
        (["umount"], (32, "", rec.UMOUNT_NOT_MOUNTED.format(mnt=tmp_path / "m"))),
        (["lvs", "--noheadings"], (0, rec.LVS_ATTR_OK, "")),
        (["lvremove", "--yes", "vg0/cairn-home-1a2b3c4d"], (0, "", "")),
    ])  # fmt: skip
    assert LvmProvider(tmp_path, runner=runner).cleanup_stale() == [
        "lvm: removed stale snapshot vg0/cairn-home-1a2b3c4d"
    ]
    assert Ledger(tmp_path).entries() == []
