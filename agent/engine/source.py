"""Reading source files: the one place that opens a user's file for backup.

Every read of backup content goes through :func:`open_source_file`, so the
platform-specific way of opening (Windows: CreateFileW with read, write and
delete sharing and FILE_FLAG_BACKUP_SEMANTICS, so a user saving in Excel is
never blocked) lives in one function.

POSIX: the file is opened read-only with

* ``O_NOFOLLOW`` — a symlink swapped in after the walk is not followed;
* ``O_NONBLOCK`` — a FIFO swapped in after the walk cannot hang the backup
  (the opened object is then checked to be a regular file);
* ``O_NOATIME`` where permitted — backups do not touch access times;
* ``O_CLOEXEC``.
"""

from __future__ import annotations

import io
import os
import stat
import sys


class NotARegularFile(OSError):
    """The path no longer names a regular file (replaced since the walk)."""


_NOATIME = getattr(os, "O_NOATIME", 0)
_noatime_ok = True


def open_source_file(path: bytes | str) -> io.FileIO:
    """Open a file for backup reading; unbuffered (callers read big blocks)."""
    if sys.platform == "win32":  # pragma: no cover - Windows only (issue 6)
        from agent.platform.windows_files import open_for_backup

        return open_for_backup(os.fsdecode(path))
    global _noatime_ok
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    if _noatime_ok and _NOATIME:
        try:
            fd = os.open(path, flags | _NOATIME)
        except PermissionError:
            # O_NOATIME needs file ownership or CAP_FOWNER; without it the
            # open fails with EPERM, so fall back (and stop trying).
            _noatime_ok = os.geteuid() == 0
            fd = os.open(path, flags)
    else:
        fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFile(f"not a regular file: {os.fsdecode(path)}")
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        return io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise
