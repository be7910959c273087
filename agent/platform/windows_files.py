"""Opening a user's file on Windows without ever getting in the user's way.

``open_for_backup(path)`` is the Windows branch of the engine's
``agent.engine.source.open_source_file``: the engine calls it (one line,
``return open_for_backup(path)``) so every source read goes through it.

* Share mode READ | WRITE | DELETE: a plain ``open()`` (read sharing only)
  makes the user's save fail - Excel and Word save by writing a temp file,
  deleting or renaming the original and renaming the temp into place, and a
  reader without delete-sharing blocks the delete. With full sharing the
  user's application always wins; the engine's consistent-read check (or the
  shadow copy) takes care of content that changes under us.
* FILE_FLAG_BACKUP_SEMANTICS: with SeBackupPrivilege enabled (an elevated
  agent), files whose ACLs shut out the agent's account can be read, as
  backup programs are entitled to.
* FILE_FLAG_SEQUENTIAL_SCAN: read-ahead, and the cache manager drops our
  pages early instead of pushing the user's working set out.
* Long paths: ``\\\\?\\`` prefix (paths beyond MAX_PATH are common in
  OneDrive and project folders); shadow device paths already carry it.

The handle is wrapped into a normal Python file object with
``msvcrt.open_osfhandle``, so the engine reads it like any other file.
"""

from __future__ import annotations

import ctypes
import errno
import io
import os
import stat

GENERIC_READ = 0x80000000
FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_SHARE_DELETE = 0x1, 0x2, 0x4
FILE_SHARE_ALL = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE
OPEN_EXISTING = 3
FILE_FLAG_BACKUP_SEMANTICS = 0x02000000
FILE_FLAG_SEQUENTIAL_SCAN = 0x08000000
INVALID_HANDLE_VALUE = ctypes.c_void_p(-1).value

ERROR_FILE_NOT_FOUND = 2
ERROR_PATH_NOT_FOUND = 3
ERROR_ACCESS_DENIED = 5
ERROR_SHARING_VIOLATION = 32
ERROR_LOCK_VIOLATION = 33
ERROR_NOT_ALL_ASSIGNED = 1300

TOKEN_ADJUST_PRIVILEGES, TOKEN_QUERY = 0x20, 0x8
SE_PRIVILEGE_ENABLED = 0x2


def long_path(path: str) -> str:
    """``path`` with the ``\\\\?\\`` prefix that lifts the MAX_PATH limit."""
    if path.startswith("\\\\?\\") or path.startswith("\\\\.\\"):
        return path
    path = path.replace("/", "\\")
    if path.startswith("\\\\"):
        return "\\\\?\\UNC\\" + path[2:]
    return "\\\\?\\" + path


def _kernel32():  # pragma: no cover - Windows only
    k = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    k.CreateFileW.restype = ctypes.c_void_p
    k.CreateFileW.argtypes = [
        ctypes.c_wchar_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32,
        ctypes.c_uint32, ctypes.c_void_p,
    ]  # fmt: skip
    k.CloseHandle.argtypes = [ctypes.c_void_p]
    return k


def open_for_backup(path: str, *, kernel32=None, msvcrt=None, last_error=None) -> io.FileIO:
    """Open ``path`` for reading with full sharing and backup semantics.

    Raises OSError with ``filename`` and ``winerror`` set, like ``open()``.
    """
    if kernel32 is None:  # pragma: no cover - Windows only
        import msvcrt as _msvcrt

        kernel32, msvcrt, last_error = _kernel32(), _msvcrt, ctypes.get_last_error  # type: ignore[attr-defined]
    handle = kernel32.CreateFileW(
        long_path(path), GENERIC_READ, FILE_SHARE_ALL, None, OPEN_EXISTING,
        FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_SEQUENTIAL_SCAN, None,
    )  # fmt: skip
    if handle is None or handle == INVALID_HANDLE_VALUE:
        raise windows_error(last_error(), path)
    try:
        fd = msvcrt.open_osfhandle(handle, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except BaseException:
        kernel32.CloseHandle(handle)
        raise
    # From here the fd owns the handle: closing the file object closes both.
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # BACKUP_SEMANTICS also opens directories
            raise IsADirectoryError(errno.EISDIR, "not a regular file", path)
        return io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


PST_HINT = (
    "Outlook keeps its data file open; back it up through a shadow copy (open-file mode "
    "'preferred' or 'required' on an elevated agent) or with Outlook closed"
)


def windows_error(code: int, path: str) -> OSError:
    """An OSError like open() raises; for an Outlook PST in use, the reason
    says what to do, so the engine's "cannot open" warning carries it as is."""
    reason = _REASONS.get(code, f"Windows error {code}")
    if path.lower().endswith(".pst") and code in (ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION):
        reason = f"{reason}; {PST_HINT}"
    exc = OSError(_ERRNO.get(code, errno.EIO), reason, path)
    exc.winerror = code  # type: ignore[attr-defined]  # set on every OS, for explain_open_error
    return exc


_ERRNO = {
    ERROR_FILE_NOT_FOUND: errno.ENOENT,
    ERROR_PATH_NOT_FOUND: errno.ENOENT,
    ERROR_ACCESS_DENIED: errno.EACCES,
    ERROR_SHARING_VIOLATION: errno.EACCES,
    ERROR_LOCK_VIOLATION: errno.EACCES,
}
_REASONS = {
    ERROR_FILE_NOT_FOUND: "file not found (deleted since it was listed)",
    ERROR_PATH_NOT_FOUND: "path not found (moved or deleted since it was listed)",
    ERROR_ACCESS_DENIED: "access denied",
    ERROR_SHARING_VIOLATION: "in use: another program has it open without sharing (sharing violation)",
    ERROR_LOCK_VIOLATION: "in use: another program has locked part of it (lock violation)",
}


def explain_open_error(path: str, exc: OSError) -> str:
    """The job-report line for a file that could not be opened.

    Outlook keeps its PST files open without read sharing; without a shadow
    copy they cannot be read at all, and the user must be told which mailbox
    file was not backed up and why - never a silent skip.
    """
    code = getattr(exc, "winerror", None)
    reason = _REASONS.get(code) if code else None
    if reason is None:
        reason = exc.strerror or str(exc)
    if path.lower().endswith(".pst"):
        if PST_HINT not in reason:
            reason = f"{reason}; {PST_HINT}"
        return f"{path}: Outlook data file not backed up: {reason}"
    return f"{path}: not backed up: {reason}"


def enable_privilege(name: str) -> bool:  # pragma: no cover - Windows only
    """Enable a privilege the process token holds (e.g. SeBackupPrivilege)."""

    class LUID(ctypes.Structure):
        _fields_ = [("LowPart", ctypes.c_uint32), ("HighPart", ctypes.c_int32)]

    class TOKEN_PRIVILEGES(ctypes.Structure):  # noqa: N801
        _fields_ = [
            ("PrivilegeCount", ctypes.c_uint32),
            ("Luid", LUID),
            ("Attributes", ctypes.c_uint32),
        ]

    advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32 = _kernel32()
    kernel32.GetCurrentProcess.restype = ctypes.c_void_p
    token = ctypes.c_void_p()
    if not advapi32.OpenProcessToken(
        ctypes.c_void_p(kernel32.GetCurrentProcess()), TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY,
        ctypes.byref(token),
    ):  # fmt: skip
        return False
    try:
        tp = TOKEN_PRIVILEGES(1, LUID(), SE_PRIVILEGE_ENABLED)
        if not advapi32.LookupPrivilegeValueW(None, name, ctypes.byref(tp.Luid)):
            return False
        if not advapi32.AdjustTokenPrivileges(token, False, ctypes.byref(tp), 0, None, None):
            return False
        # Succeeds even when the token lacks the privilege; this says so.
        return ctypes.get_last_error() != ERROR_NOT_ALL_ASSIGNED  # type: ignore[attr-defined]
    finally:
        kernel32.CloseHandle(token)
