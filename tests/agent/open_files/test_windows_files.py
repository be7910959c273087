"""Windows file opening (full sharing, backup semantics) against a recorded
kernel32: the handle the fake returns is a real file on this machine."""

from __future__ import annotations

import os

import pytest

from agent.platform import windows_files as wf


class FakeKernel32:
    def __init__(self, error: int | None = None):
        self.error = error
        self.calls = []
        self.closed = []

    def CreateFileW(self, path, access, share, security, disposition, flags, template):  # noqa: N802
        self.calls.append((path, access, share, disposition, flags))
        return wf.INVALID_HANDLE_VALUE if self.error else 0x1F4

    def CloseHandle(self, handle):  # noqa: N802
        self.closed.append(handle)
        return 1


class FakeMsvcrt:
    """open_osfhandle: turns the fake handle into a real fd on ``target``."""

    def __init__(self, target):
        self.target = target

    def open_osfhandle(self, handle, flags):
        assert handle == 0x1F4 and flags & os.O_RDONLY == os.O_RDONLY
        return os.open(self.target, os.O_RDONLY)


def test_opens_with_full_sharing_and_backup_semantics(tmp_path):
    target = tmp_path / "budget.xlsx"
    target.write_bytes(b"PK\x03\x04 spreadsheet")
    k = FakeKernel32()
    with wf.open_for_backup(
        r"C:\Users\ana\Documents\budget.xlsx", kernel32=k, msvcrt=FakeMsvcrt(target),
        last_error=lambda: 0,
    ) as f:  # fmt: skip
        assert f.read() == b"PK\x03\x04 spreadsheet"
    [(path, access, share, disposition, flags)] = k.calls
    assert path == r"\\?\C:\Users\ana\Documents\budget.xlsx"
    assert access == wf.GENERIC_READ
    assert share == wf.FILE_SHARE_READ | wf.FILE_SHARE_WRITE | wf.FILE_SHARE_DELETE
    assert disposition == wf.OPEN_EXISTING
    assert flags & wf.FILE_FLAG_BACKUP_SEMANTICS and flags & wf.FILE_FLAG_SEQUENTIAL_SCAN


def test_directory_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError):
        wf.open_for_backup(r"C:\Users", kernel32=FakeKernel32(), msvcrt=FakeMsvcrt(tmp_path),
                           last_error=lambda: 0)  # fmt: skip


def test_long_paths():
    assert wf.long_path(r"C:\a\b") == r"\\?\C:\a\b"
    assert wf.long_path(r"\\filer\home\ana") == r"\\?\UNC\filer\home\ana"
    shadow = r"\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\Users\x"
    assert wf.long_path(shadow) == shadow


def test_pst_in_use_by_outlook_is_reported_by_path_with_the_reason():
    pst = r"C:\Users\ana\Documents\Outlook Files\archive.pst"
    with pytest.raises(OSError) as caught:
        wf.open_for_backup(pst, kernel32=FakeKernel32(error=32), msvcrt=None,
                           last_error=lambda: wf.ERROR_SHARING_VIOLATION)  # fmt: skip
    exc = caught.value
    assert exc.filename == pst and exc.winerror == wf.ERROR_SHARING_VIOLATION
    # What the engine's "cannot open: {strerror}" warning will carry:
    assert "sharing violation" in exc.strerror and "shadow copy" in exc.strerror
    line = wf.explain_open_error(pst, exc)
    assert line.startswith(pst + ": Outlook data file not backed up: in use")
    assert "sharing violation" in line and "shadow copy" in line
    other = wf.explain_open_error(r"C:\x\notes.docx", exc)
    assert other == r"C:\x\notes.docx: not backed up: " + wf._REASONS[32]
    # A POSIX error on any OS still names the file and the reason.
    assert wf.explain_open_error("/home/ana/mail.pst", PermissionError(13, "Permission denied"))
