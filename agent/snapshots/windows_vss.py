"""Windows: Volume Shadow Copy through the VSS requester API (IVssBackupComponents).

Why this API, and not the alternatives:

* ``IVssBackupComponents`` (vssapi.dll) is the only interface that gives what
  a backup agent needs: the ``VSS_CTX_BACKUP`` context, whose shadow copies
  are *auto-release* (VSS deletes them when the requester releases the
  object or its process dies, so a crashed agent leaves nothing behind), and
  the ``VSS_BT_COPY`` backup type, which lets writers (SQL Server, Exchange)
  freeze consistently without truncating the customer's own log chains.
* WMI ``Win32_ShadowCopy.Create`` only makes persistent, client-accessible
  shadows (they survive a crash until someone deletes them) with no choice
  of backup type; ``vssadmin create shadow`` and ``diskshadow`` exist only
  on Windows Server SKUs.
* It is not an automation interface, so pywin32 cannot call it; we declare
  its vtable in ctypes (agent/platform/com.py) - no extra dependency.

Requirements checked before trying: a 64-bit process (a 32-bit requester on
64-bit Windows is refused by VSS), elevation (the agent service runs as
LocalSystem), and SeBackupPrivilege enabled so files whose ACL shuts out
administrators can still be read with FILE_FLAG_BACKUP_SEMANTICS.

Sequence (per run, one shadow set for all volumes holding sources):
CoInitializeEx + CoInitializeSecurity -> CreateVssBackupComponents ->
InitializeForBackup -> SetContext(BACKUP) -> SetBackupState(COPY) ->
GatherWriterMetadata -> StartSnapshotSet -> AddToSnapshotSet per volume ->
[ledger] -> PrepareForBackup -> DoSnapshotSet -> GetSnapshotProperties
(the ``\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopyN`` device we read
through) ... backup ... -> BackupComplete -> DeleteSnapshots(set) -> Release.

The set's ids are written to the ledger before DoSnapshotSet, and removed
after release. Auto-release shadows normally vanish with the process; the
ledger catches the rest (the VSS service itself crashing, a hard power-off
during DoSnapshotSet): ``cleanup_stale`` deletes them by id on the next start.

Outlook has no VSS writer: a PST read from the shadow is crash-consistent,
which Outlook's own repair handles; Windows already empties ``*.ost`` in
shadow copies (FilesNotToSnapshot).

Tested here through recorded COM responses: the tests build fake COM objects
with these exact vtable signatures (tests/agent/open_files/test_vss_recorded.py).
Never run on a real Windows machine in this project - see docs/open-files.md.
"""

from __future__ import annotations

import ctypes
import ntpath
import struct
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from agent.platform import com
from agent.platform.com import GUID, GUID_NULL, ComError, ComObject, failed, unsigned
from agent.snapshots.base import (
    YES,
    Availability,
    SnapshotError,
    SnapshotProvider,
    SnapshotView,
    StateDir,
    no,
)
from agent.snapshots.ledger import Ledger

c_void_pp = ctypes.POINTER(ctypes.c_void_p)

# vss.h / vsbackup.h
VSS_CTX_BACKUP = 0
VSS_CTX_ALL = -1  # 0xffffffff as a LONG
VSS_BT_COPY = 5
VSS_OBJECT_SNAPSHOT_SET = 2
VSS_OBJECT_SNAPSHOT = 3
VSS_S_ASYNC_PENDING = 0x00042309
VSS_S_ASYNC_FINISHED = 0x0004230A
VSS_S_ASYNC_CANCELLED = 0x0004230B
VSS_E_OBJECT_NOT_FOUND = 0x80042308
INFINITE = 0xFFFFFFFF

# What an admin reading the job report should understand from a VSS failure.
VSS_ERRORS = {
    com.E_ACCESSDENIED: "access denied: the agent must run elevated (LocalSystem or an administrator)",
    0x80042301: "VSS_E_BAD_STATE: calls out of order (agent bug)",
    0x80042302: "VSS_E_UNEXPECTED: the VSS service failed; see the Application event log",
    0x80042306: "VSS_E_PROVIDER_VETO: the shadow copy provider refused; see the event log",
    0x80042308: "VSS_E_OBJECT_NOT_FOUND",
    0x8004230C: "VSS_E_VOLUME_NOT_SUPPORTED: this volume cannot be shadow-copied (FAT/exFAT, network or removable)",
    0x8004230E: "VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER",
    0x8004230F: "VSS_E_UNEXPECTED_PROVIDER_ERROR: the shadow copy provider failed; see the event log",
    0x80042312: "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED",
    0x80042313: "VSS_E_FLUSH_WRITES_TIMEOUT: the system was too busy to flush writes; try again later",
    0x80042314: "VSS_E_HOLD_WRITES_TIMEOUT: the system was too busy to hold writes; try again later",
    0x80042316: "VSS_E_SNAPSHOT_SET_IN_PROGRESS: another backup program is creating a shadow copy",
    0x80042317: "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED: the volume holds 64 shadow copies already",
    0x80042318: "VSS_E_WRITER_INFRASTRUCTURE: VSS writers are broken (`vssadmin list writers`)",
    0x80042319: "VSS_E_WRITER_NOT_RESPONDING: a VSS writer did not answer",
    0x8004231F: "VSS_E_INSUFFICIENT_STORAGE: not enough free space for the shadow copy storage area",
    0x8004232B: "VSS_E_NESTED_VOLUME_LIMIT",
}


def vss_meaning(hr: int) -> str:
    return VSS_ERRORS.get(unsigned(hr), "")


class VSS_SNAPSHOT_PROP(ctypes.Structure):  # noqa: N801 - the SDK's name
    _fields_ = [
        ("m_SnapshotId", GUID),
        ("m_SnapshotSetId", GUID),
        ("m_lSnapshotsCount", ctypes.c_int32),
        ("m_pwszSnapshotDeviceObject", ctypes.c_wchar_p),
        ("m_pwszOriginalVolumeName", ctypes.c_wchar_p),
        ("m_pwszOriginatingMachine", ctypes.c_wchar_p),
        ("m_pwszServiceMachine", ctypes.c_wchar_p),
        ("m_pwszExposedName", ctypes.c_wchar_p),
        ("m_pwszExposedPath", ctypes.c_wchar_p),
        ("m_ProviderId", GUID),
        ("m_lSnapshotAttributes", ctypes.c_int32),
        ("m_tsCreationTimestamp", ctypes.c_int64),
        ("m_eStatus", ctypes.c_int32),
    ]


IVssAsync = com.interface(
    "IVssAsync",
    {
        "Cancel": (3, []),
        "Wait": (4, [ctypes.c_uint32]),
        "QueryStatus": (5, [ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int32)]),
    },
)

# Only the methods we call, at their vtable positions in vsbackup.h.
IVssBackupComponents = com.interface(
    "IVssBackupComponents",
    {
        "InitializeForBackup": (5, [ctypes.c_void_p]),  # BSTR, NULL for a new backup
        "SetBackupState": (6, [ctypes.c_bool, ctypes.c_bool, ctypes.c_int, ctypes.c_bool]),
        "GatherWriterMetadata": (9, [c_void_pp]),
        "FreeWriterMetadata": (12, []),
        "PrepareForBackup": (14, [c_void_pp]),
        "AbortBackup": (15, []),
        "BackupComplete": (27, [c_void_pp]),
        "SetContext": (35, [ctypes.c_int32]),
        "StartSnapshotSet": (36, [ctypes.POINTER(GUID)]),
        "AddToSnapshotSet": (37, [ctypes.c_wchar_p, GUID, ctypes.POINTER(GUID)]),
        "DoSnapshotSet": (38, [c_void_pp]),
        "DeleteSnapshots": (
            39,
            [
                GUID,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.POINTER(ctypes.c_int32),
                ctypes.POINTER(GUID),
            ],
        ),
        "GetSnapshotProperties": (42, [GUID, ctypes.POINTER(VSS_SNAPSHOT_PROP)]),
    },
)


class WindowsHost:  # pragma: no cover - the real thing only runs on Windows
    """The OS calls the provider needs; tests replace it with a recorded host."""

    def is_windows(self) -> bool:
        return sys.platform == "win32"

    def is_64bit(self) -> bool:
        return struct.calcsize("P") == 8

    def is_elevated(self) -> bool:
        return bool(ctypes.windll.shell32.IsUserAnAdmin())  # type: ignore[attr-defined]

    def enable_privilege(self, name: str) -> bool:
        from agent.platform.windows_files import enable_privilege

        return enable_privilege(name)

    def volume_of(self, path: str) -> str:
        buf = ctypes.create_unicode_buffer(1024)
        if not ctypes.windll.kernel32.GetVolumePathNameW(path, buf, len(buf)):  # type: ignore[attr-defined]
            raise ctypes.WinError()  # type: ignore[attr-defined]
        return buf.value

    def drive_type(self, volume: str) -> int:
        return ctypes.windll.kernel32.GetDriveTypeW(volume)  # type: ignore[attr-defined]

    def filesystem_of(self, volume: str) -> str:
        fs = ctypes.create_unicode_buffer(64)
        ok = ctypes.windll.kernel32.GetVolumeInformationW(  # type: ignore[attr-defined]
            volume, None, 0, None, None, None, fs, len(fs)
        )
        return fs.value if ok else ""

    def com_initialise(self) -> None:
        com.initialise()

    def create_backup_components(self) -> ComObject:
        vssapi = ctypes.WinDLL("vssapi")  # type: ignore[attr-defined]
        # The plain-C export; CreateVssBackupComponents itself is C++-mangled.
        create = vssapi.CreateVssBackupComponentsInternal
        create.restype = com.HRESULT
        create.argtypes = [c_void_pp]
        out = ctypes.c_void_p()
        hr = create(ctypes.byref(out))
        if failed(hr):
            raise ComError("CreateVssBackupComponents", hr, vss_meaning(hr))
        return ComObject(out, IVssBackupComponents)

    def free_snapshot_properties(self, prop: VSS_SNAPSHOT_PROP) -> None:
        vssapi = ctypes.WinDLL("vssapi")  # type: ignore[attr-defined]
        vssapi.VssFreeSnapshotPropertiesInternal(ctypes.byref(prop))


DRIVE_REMOVABLE, DRIVE_FIXED, DRIVE_REMOTE = 2, 3, 4
VSS_FILESYSTEMS = {"NTFS", "REFS"}


class VssSession:
    """One IVssBackupComponents: checked calls, waits on IVssAsync."""

    def __init__(self, host, timeout_ms: int = 600_000):
        self.host = host
        self.timeout_ms = timeout_ms
        self.vss: ComObject = host.create_backup_components()

    def call(self, method: str, *args) -> int:
        return self.vss.check(method, *args, meaning=vss_meaning)

    def wait(self, method: str) -> None:
        """Start an asynchronous operation and wait for its outcome."""
        out = ctypes.c_void_p()
        self.call(method, ctypes.byref(out))
        job = ComObject(out, IVssAsync)
        try:
            job.check("Wait", self.timeout_ms, meaning=vss_meaning)
            status, reserved = ctypes.c_int32(), ctypes.c_int32()
            job.check("QueryStatus", ctypes.byref(status), ctypes.byref(reserved))
            result = unsigned(status.value)
            if result == VSS_S_ASYNC_PENDING:
                job.Cancel()
                raise ComError(
                    f"IVssBackupComponents::{method}",
                    status.value,
                    f"still running after {self.timeout_ms // 1000} s",
                )
            if result == VSS_S_ASYNC_CANCELLED:
                raise ComError(f"IVssBackupComponents::{method}", status.value, "cancelled")
            if failed(status.value):
                raise ComError(
                    f"IVssBackupComponents::{method}", status.value, vss_meaning(status.value)
                )
        finally:
            job.release()

    def snapshot_properties(self, snapshot_id: GUID) -> dict[str, str]:
        prop = VSS_SNAPSHOT_PROP()
        self.call("GetSnapshotProperties", snapshot_id, ctypes.byref(prop))
        try:
            return {
                "device": prop.m_pwszSnapshotDeviceObject or "",
                "volume": prop.m_pwszOriginalVolumeName or "",
                "set": str(prop.m_SnapshotSetId),
            }
        finally:
            self.host.free_snapshot_properties(prop)

    def delete(self, object_id: GUID, kind: int) -> None:
        deleted, nondeleted = ctypes.c_int32(), GUID()
        hr = self.vss.DeleteSnapshots(
            object_id, kind, 1, ctypes.byref(deleted), ctypes.byref(nondeleted)
        )
        if failed(hr) and unsigned(hr) != VSS_E_OBJECT_NOT_FOUND:
            raise ComError("IVssBackupComponents::DeleteSnapshots", hr, vss_meaning(hr))

    def release(self) -> None:
        self.vss.release()


class VssProvider(SnapshotProvider):
    name = "vss"

    def __init__(
        self,
        state_dir: StateDir = None,
        *,
        host: Any = None,
        ledger: Ledger | None = None,
        timeout_ms: int = 600_000,
    ):
        super().__init__(state_dir, ledger=ledger)
        self.host = host if host is not None else WindowsHost()
        self.timeout_ms = timeout_ms

    # -- availability -------------------------------------------------------------
    def _volume(self, path: str) -> str:
        if path.startswith("\\\\") and not path.startswith("\\\\?\\"):
            raise SnapshotError(f"{path} is a network path: VSS only snapshots local volumes")
        try:
            return self.host.volume_of(path)
        except OSError as exc:
            raise SnapshotError(f"cannot find the volume holding {path}: {exc}") from exc

    def available(self, paths: Iterable[str]) -> Availability:
        paths = list(paths)
        if not paths:
            return no("no source paths")
        if not self.host.is_windows():
            return no("Volume Shadow Copy exists only on Windows")
        if not self.host.is_64bit():
            return no("VSS needs a 64-bit agent (a 32-bit requester is refused on 64-bit Windows)")
        if not self.host.is_elevated():
            return no("VSS needs the agent to run elevated (the service runs as LocalSystem)")
        for p in paths:
            try:
                vol = self._volume(p)
            except SnapshotError as exc:
                return no(str(exc))
            kind = self.host.drive_type(vol)
            if kind == DRIVE_REMOTE:
                return no(f"{p} is on a network drive: VSS only snapshots local volumes")
            fs = self.host.filesystem_of(vol)
            if fs.upper() not in VSS_FILESYSTEMS:
                return no(f"{p} is on {vol} ({fs or 'unknown filesystem'}): VSS needs NTFS or ReFS")
        return YES

    # -- lifecycle ----------------------------------------------------------------
    @contextmanager
    def open(self, paths: Iterable[str]) -> Iterator[SnapshotView]:
        volumes: list[str] = []
        for p in paths:
            vol = self._volume(ntpath.normpath(p))
            if vol.lower() not in (v.lower() for v in volumes):
                volumes.append(vol)
        view = SnapshotView(self.name, {})
        if not self.host.enable_privilege("SeBackupPrivilege"):
            view.warnings.append(
                "vss: SeBackupPrivilege could not be enabled; files whose permissions "
                "exclude the agent's account will be reported unreadable"
            )
        try:
            self.host.com_initialise()
            session = VssSession(self.host, self.timeout_ms)
        except ComError as exc:
            raise SnapshotError(f"vss: {exc}") from exc

        set_id = GUID()
        key = None
        created = False
        try:
            try:
                session.call("InitializeForBackup", None)
                session.call("SetContext", VSS_CTX_BACKUP)
                session.call("SetBackupState", False, False, VSS_BT_COPY, False)
                session.wait("GatherWriterMetadata")
                session.call("FreeWriterMetadata")
                session.call("StartSnapshotSet", ctypes.byref(set_id))
                snapshot_ids: dict[str, GUID] = {}
                for vol in volumes:
                    sid = GUID()
                    session.call("AddToSnapshotSet", vol, GUID_NULL, ctypes.byref(sid))
                    snapshot_ids[vol] = sid
                key = str(set_id)
                # Recorded before the shadows exist: a crash inside DoSnapshotSet
                # still leaves their ids for cleanup_stale.
                self.ledger.add(
                    self.name, key, snapshots=[str(s) for s in snapshot_ids.values()],
                    volumes=volumes,
                )  # fmt: skip
                session.wait("PrepareForBackup")
                session.wait("DoSnapshotSet")
                created = True
                for vol, sid in snapshot_ids.items():
                    props = session.snapshot_properties(sid)
                    if not props["device"]:
                        raise SnapshotError(f"vss: no shadow device for {vol}")
                    view.roots[vol] = props["device"]
                    view.ids.append(str(sid))
            except ComError as exc:
                try:
                    session.vss.AbortBackup()
                except Exception:
                    pass
                raise SnapshotError(f"vss: {exc}") from exc
            yield view
        finally:
            view.warnings.extend(self._release(session, set_id, key, created))

    def _release(
        self, session: VssSession, set_id: GUID, key: str | None, created: bool
    ) -> list[str]:
        """BackupComplete (writers may note the COPY backup), delete the set,
        release the session. The ledger entry goes once the set is deleted."""
        problems = []
        if created:
            try:
                session.wait("BackupComplete")
            except ComError as exc:  # the shadows still go below; only writers care
                problems.append(f"vss: BackupComplete: {exc}")
        deleted = key is None
        if key is not None:
            try:
                session.delete(set_id, VSS_OBJECT_SNAPSHOT_SET)
                deleted = True
            except ComError as exc:
                problems.append(f"vss: could not delete shadow set {key}: {exc}")
        try:
            session.release()  # auto-release context: VSS drops whatever is left
        except Exception as exc:
            problems.append(f"vss: releasing the VSS session: {exc}")
        if key is not None and deleted:
            self.ledger.remove(self.name, key)
        return problems

    def cleanup_stale(self) -> list[str]:
        entries = self.ledger.entries(self.name)
        if not entries:
            return []
        lines = []
        try:
            self.host.com_initialise()
            session = VssSession(self.host, self.timeout_ms)
            session.call("SetContext", VSS_CTX_ALL)
        except ComError as exc:
            return [f"vss: cannot clean up stale shadow copies: {exc}"]
        try:
            for entry in entries:
                try:
                    for sid in entry.get("snapshots", []):
                        session.delete(GUID.parse(sid), VSS_OBJECT_SNAPSHOT)
                except ComError as exc:
                    lines.append(f"vss: stale shadow set {entry['key']} left in place: {exc}")
                    continue
                self.ledger.remove(self.name, entry["key"])
                lines.append(f"vss: removed stale shadow set {entry['key']}")
        finally:
            session.release()
        return lines
