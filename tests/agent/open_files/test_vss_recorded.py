"""The VSS provider against a recorded Windows host and fake COM objects
with the real vtable layout (see fakevss.py)."""

from __future__ import annotations

import ctypes
import struct
import uuid

import pytest

from agent.platform.com import GUID
from agent.snapshots import OpenFileMode, SnapshotRequiredError, point_in_time
from agent.snapshots.base import SnapshotError
from agent.snapshots.ledger import Ledger
from agent.snapshots.windows_vss import (
    VSS_BT_COPY,
    VSS_CTX_ALL,
    VSS_CTX_BACKUP,
    VSS_OBJECT_SNAPSHOT,
    VSS_OBJECT_SNAPSHOT_SET,
    VSS_SNAPSHOT_PROP,
    VssProvider,
)
from tests.agent.open_files.fakevss import RecordedWindowsHost

DOCS = r"C:\Users\ana\Documents"
PST = r"C:\Users\ana\Documents\Outlook Files\ana@example.com.pst"
DATA = r"D:\Projects"


@pytest.fixture
def host():
    return RecordedWindowsHost()


@pytest.fixture
def provider(host, tmp_path):
    return VssProvider(tmp_path / "state", host=host)


def test_snapshot_property_struct_matches_the_sdk_layout():
    if struct.calcsize("P") == 8:
        assert ctypes.sizeof(VSS_SNAPSHOT_PROP) == 128
        assert VSS_SNAPSHOT_PROP.m_pwszSnapshotDeviceObject.offset == 40
        assert VSS_SNAPSHOT_PROP.m_tsCreationTimestamp.offset == 112


def test_one_shadow_set_for_all_volumes_read_through_the_device_path(provider, host, tmp_path):
    with provider.open([DOCS, PST, DATA]) as view:
        assert view.translate(PST) == (
            r"\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy12"
            r"\Users\ana\Documents\Outlook Files\ana@example.com.pst"
        )
        assert view.translate("C:\\") == r"\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy12" + "\\"
        assert view.translate(DATA + r"\plan.xlsx") == (
            r"\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy13\Projects\plan.xlsx"
        )
        assert len(host.vss.shadows) == 2
        [entry] = Ledger(tmp_path / "state").entries("vss")
        assert sorted(entry["snapshots"]) == sorted(host.vss.shadows)
        assert view.warnings == []
    calls = host.vss.calls
    assert calls[:5] == [
        ("InitializeForBackup",),
        ("SetContext", VSS_CTX_BACKUP),  # auto-release: gone if the agent dies
        ("SetBackupState", False, False, VSS_BT_COPY, False),  # COPY: log chains untouched
        ("GatherWriterMetadata",),
        ("FreeWriterMetadata",),
    ]
    assert calls[5:] == [
        ("StartSnapshotSet",),
        ("AddToSnapshotSet", "C:\\", "{00000000-0000-0000-0000-000000000000}"),
        ("AddToSnapshotSet", "D:\\", "{00000000-0000-0000-0000-000000000000}"),
        ("PrepareForBackup",),
        ("DoSnapshotSet",),
        ("GetSnapshotProperties",),
        ("GetSnapshotProperties",),
        ("BackupComplete",),
        ("DeleteSnapshots", entry["key"], VSS_OBJECT_SNAPSHOT_SET, 1),
    ]
    assert host.vss.shadows == {}, "released at the end"
    assert host.freed == 2, "VssFreeSnapshotProperties for each GetSnapshotProperties"
    session = host.vss.sessions[0]
    assert session.obj.refs == 0 and all(a.refs == 0 for a in session.asyncs)
    assert Ledger(tmp_path / "state").entries() == []
    assert host.com_initialised == 1


def test_released_when_the_backup_raises(provider, host):
    with pytest.raises(RuntimeError), provider.open([DOCS]):
        raise RuntimeError("backup failed half-way")
    assert host.vss.shadows == {}
    assert host.vss.sessions[0].obj.refs == 0


def test_unavailable_reasons(tmp_path):
    def reason(host, paths=(DOCS,)):
        verdict = VssProvider(tmp_path, host=host).available(list(paths))
        assert not verdict
        return verdict.reason

    assert "elevated" in reason(RecordedWindowsHost(elevated=False))
    assert "64-bit" in reason(RecordedWindowsHost(bits64=False))
    assert "FAT32" in reason(RecordedWindowsHost(), [r"E:\photos"])
    assert "network" in reason(RecordedWindowsHost(), [r"Z:\share"])
    assert "network path" in reason(RecordedWindowsHost(), [r"\\filer\home\ana"])
    assert VssProvider(tmp_path, host=RecordedWindowsHost()).available([DOCS, DATA])


def test_failed_shadow_copy_is_explained_aborted_and_leaves_nothing(provider, host, tmp_path):
    host.vss.fail["async:DoSnapshotSet"] = 0x8004231F  # VSS_E_INSUFFICIENT_STORAGE
    with (
        pytest.raises(SnapshotError, match="INSUFFICIENT_STORAGE.*free space"),
        provider.open([DOCS]),
    ):
        pass
    assert ("AbortBackup",) in host.vss.calls
    assert ("BackupComplete",) not in host.vss.calls
    assert host.vss.shadows == {}
    assert Ledger(tmp_path / "state").entries() == []
    assert host.vss.sessions[0].obj.refs == 0


def test_access_denied_is_explained(provider, host):
    host.vss.fail["InitializeForBackup"] = 0x80070005
    with pytest.raises(SnapshotError, match="elevated"), provider.open([DOCS]):
        pass


def test_required_mode_fails_the_run_preferred_falls_back(host, tmp_path):
    host.vss.fail["async:PrepareForBackup"] = 0x80042316  # another backup is running
    with (
        pytest.raises(
            SnapshotRequiredError, match=r"required.*C:\\Users.*SNAPSHOT_SET_IN_PROGRESS"
        ),
        point_in_time([DOCS], "required", providers=[VssProvider(tmp_path, host=host)]),
    ):
        pass
    host.vss.fail["async:PrepareForBackup"] = 0x80042316
    with point_in_time(
        [DOCS], OpenFileMode.PREFERRED, providers=[VssProvider(tmp_path, host=host)]
    ) as pit:
        assert pit.views == [] and DOCS in pit.live
        assert pit.translate(PST) == PST
        assert any("another backup program" in w and "consistent-read" in w for w in pit.warnings)


def test_stale_shadows_from_a_crash_are_deleted_on_next_start(host, tmp_path):
    # A run that died after DoSnapshotSet (say the VSS service crashed with it):
    # two shadows in its set; one is already gone, the other survived.
    set_id, gone, kept = (str(GUID.parse(uuid.uuid4())) for _ in range(3))
    device = r"\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy9"
    host.vss.shadows[kept] = {"set": set_id, "volume": "D:\\", "device": device}
    Ledger(tmp_path / "state").add("vss", set_id, snapshots=[gone, kept], volumes=["C:\\", "D:\\"])
    host.vss.calls.clear()
    lines = VssProvider(tmp_path / "state", host=host).cleanup_stale()
    assert len(lines) == 1 and lines[0].startswith("vss: removed stale shadow set {")
    assert host.vss.shadows == {}
    assert host.vss.calls[0] == ("SetContext", VSS_CTX_ALL)
    assert sorted(c[1] for c in host.vss.calls[1:]) == sorted([gone, kept])
    assert all(c[2] == VSS_OBJECT_SNAPSHOT for c in host.vss.calls[1:])
    assert Ledger(tmp_path / "state").entries() == []
    assert VssProvider(tmp_path / "state", host=host).cleanup_stale() == []
