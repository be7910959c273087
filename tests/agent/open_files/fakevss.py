"""A Windows host whose VSS answers in the shapes Windows uses (never
captured from a real machine by this project: see docs/open-files.md).

The COM side is a fake IVssBackupComponents built on real vtables
(fakecom.py): the provider's ctypes calls are marshalled as on Windows, and
the fake enforces VSS's call order (VSS_E_BAD_STATE otherwise). Ids and
device names have the shapes Windows returns (``vssadmin list shadows``):
``{GUID}`` ids and ``\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopyN``.
"""

from __future__ import annotations

import ctypes
import itertools
import uuid

from agent.platform.com import GUID, ComObject
from agent.snapshots import windows_vss as w
from tests.agent.open_files.fakecom import FakeComObject

VSS_E_BAD_STATE = 0x80042301 - (1 << 32)
ORDER = [
    "InitializeForBackup",
    "SetContext",
    "SetBackupState",
    "GatherWriterMetadata",
    "FreeWriterMetadata",
    "StartSnapshotSet",
    "AddToSnapshotSet",
    "PrepareForBackup",
    "DoSnapshotSet",
    "GetSnapshotProperties",
    "BackupComplete",
    "DeleteSnapshots",
]


def signed(hr: int) -> int:
    return hr - (1 << 32) if hr & 0x80000000 else hr


class FakeVss:
    """State of the machine's VSS service, shared by every session."""

    def __init__(self):
        self.shadows: dict[str, dict] = {}  # snapshot id -> {set, volume, device}
        self.numbers = itertools.count(12)  # HarddiskVolumeShadowCopy12, 13, ...
        self.calls: list[tuple] = []
        self.fail: dict[str, int] = {}  # method -> HRESULT (sync, or async result)
        self.sessions: list[FakeSession] = []


class FakeSession:
    def __init__(self, vss: FakeVss):
        self.vss = vss
        self.log: list = []
        self.state = -1
        self.context = None
        self.set_id: str | None = None
        self.pending: dict[str, str] = {}  # snapshot id -> volume
        self.asyncs: list[FakeComObject] = []
        self._strings: list = []
        self.obj = FakeComObject(w.IVssBackupComponents, self._impl(), self.log)

    def _step(self, name: str) -> int | None:
        self.vss.calls.append((name,))
        if name in self.vss.fail and not name.startswith("async:"):
            return signed(self.vss.fail.pop(name))
        position = ORDER.index(name)
        if name not in ("AddToSnapshotSet", "GetSnapshotProperties", "DeleteSnapshots") and (
            position < self.state
        ):
            return VSS_E_BAD_STATE
        self.state = max(self.state, position)
        return None

    def _async(self, name: str, out, effect=None):
        def query(status, reserved):
            hr = self.vss.fail.pop(f"async:{name}", None)
            if hr is None and effect is not None:
                effect()
            status[0] = signed(hr) if hr is not None else w.VSS_S_ASYNC_FINISHED
            return 0

        job = FakeComObject(w.IVssAsync, {"Wait": lambda ms: 0, "QueryStatus": query}, self.log)
        self.asyncs.append(job)
        out[0] = job.ptr

    def _impl(self):
        def step(name, then=None):
            def call(*args):
                early = self._step(name)
                if early is not None:
                    return early
                return then(*args) if then else 0

            return call

        def set_context(ctx):
            self.context = ctx
            self.vss.calls[-1] = ("SetContext", ctx)

        def backup_state(select, bootable, kind, partial):
            self.vss.calls[-1] = ("SetBackupState", select, bootable, kind, partial)

        def start(out):
            self.set_id = str(GUID.parse(uuid.uuid4()))
            out[0] = GUID.parse(self.set_id)

        def add(volume, provider, out):
            sid = str(GUID.parse(uuid.uuid4()))
            self.pending[sid] = volume
            self.vss.calls[-1] = ("AddToSnapshotSet", volume, str(provider))
            out[0] = GUID.parse(sid)

        def do_set(out):
            def made():
                for sid, vol in self.pending.items():
                    n = next(self.vss.numbers)
                    self.vss.shadows[sid] = {
                        "set": self.set_id,
                        "volume": vol,
                        "device": f"\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy{n}",
                    }

            self._async("DoSnapshotSet", out, made)

        def props(sid, prop):
            shadow = self.vss.shadows.get(str(sid))
            if shadow is None:
                return signed(w.VSS_E_OBJECT_NOT_FOUND)
            device = ctypes.create_unicode_buffer(shadow["device"])
            volume = ctypes.create_unicode_buffer(
                "\\\\?\\Volume{3e5f0a6c-0000-0000-0000-100000000000}\\"
            )
            self._strings += [device, volume]
            prop[0].m_SnapshotId = sid
            prop[0].m_SnapshotSetId = GUID.parse(shadow["set"])
            prop[0].m_pwszSnapshotDeviceObject = ctypes.cast(device, ctypes.c_wchar_p)
            prop[0].m_pwszOriginalVolumeName = ctypes.cast(volume, ctypes.c_wchar_p)
            return 0

        def delete(object_id, kind, force, deleted, nondeleted):
            self.vss.calls[-1] = ("DeleteSnapshots", str(object_id), kind, force)
            oid = str(object_id)
            if kind == w.VSS_OBJECT_SNAPSHOT_SET:
                gone = [s for s, v in self.vss.shadows.items() if v["set"] == oid]
            else:
                gone = [oid] if oid in self.vss.shadows else []
            if not gone:
                return signed(w.VSS_E_OBJECT_NOT_FOUND)
            for s in gone:
                del self.vss.shadows[s]
            deleted[0] = len(gone)
            return 0

        def abort():
            self.vss.calls.append(("AbortBackup",))
            return 0

        return {
            "InitializeForBackup": step("InitializeForBackup"),
            "SetContext": step("SetContext", set_context),
            "SetBackupState": step("SetBackupState", backup_state),
            "GatherWriterMetadata": step(
                "GatherWriterMetadata", lambda out: self._async("GatherWriterMetadata", out)
            ),
            "FreeWriterMetadata": step("FreeWriterMetadata"),
            "StartSnapshotSet": step("StartSnapshotSet", start),
            "AddToSnapshotSet": step("AddToSnapshotSet", add),
            "PrepareForBackup": step(
                "PrepareForBackup", lambda out: self._async("PrepareForBackup", out)
            ),
            "DoSnapshotSet": step("DoSnapshotSet", do_set),
            "GetSnapshotProperties": step("GetSnapshotProperties", props),
            "BackupComplete": step(
                "BackupComplete", lambda out: self._async("BackupComplete", out)
            ),
            "DeleteSnapshots": step("DeleteSnapshots", delete),
            "AbortBackup": abort,
        }


class RecordedWindowsHost:
    """Answers the provider's OS questions like an elevated 64-bit agent on a
    laptop with C: (NTFS), D: (NTFS, data), E: (FAT32 USB stick), Z: (network)."""

    def __init__(self, vss: FakeVss | None = None, *, elevated=True, bits64=True):
        self.vss = vss or FakeVss()
        self.elevated, self.bits64 = elevated, bits64
        self.freed = 0
        self.com_initialised = 0

    def is_windows(self):
        return True

    def is_64bit(self):
        return self.bits64

    def is_elevated(self):
        return self.elevated

    def enable_privilege(self, name):
        return name == "SeBackupPrivilege" and self.elevated

    def volume_of(self, path):
        if path[1:3] != ":\\":
            raise OSError(2, "The system cannot find the file specified", path)
        return path[:3].upper()

    def drive_type(self, volume):
        return {"Z:\\": w.DRIVE_REMOTE, "E:\\": w.DRIVE_REMOVABLE}.get(volume, w.DRIVE_FIXED)

    def filesystem_of(self, volume):
        return {"E:\\": "FAT32"}.get(volume, "NTFS")

    def com_initialise(self):
        self.com_initialised += 1

    def create_backup_components(self):
        session = FakeSession(self.vss)
        self.vss.sessions.append(session)
        return ComObject(session.obj.ptr, w.IVssBackupComponents)

    def free_snapshot_properties(self, prop):
        self.freed += 1
