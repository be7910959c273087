"""Background CPU and I/O priority for the agent, on every OS.

Call ``background()`` once, early, before the backup pipeline starts its
threads: on Linux nice and ioprio belong to each thread, and new threads
inherit them from the one that creates them (we also walk the threads that
already exist). Lowering is one-way for an unprivileged process, which is
what we want: nothing later in the agent can raise it back by accident.

* Linux: nice 19 (setpriority) and I/O class best-effort level 7, the lowest
  that is still guaranteed to progress (``ioprio_set`` through ctypes: the
  stdlib has no binding). The idle I/O class is available (``io="idle"``) but
  can starve the backup for hours behind a busy indexer, so it is not the
  default. BFQ honours ioprio fully, mq-deadline only by class (kernel
  5.14+), ``none`` (common on NVMe) not at all: there nice is what remains.
* Windows: ``SetPriorityClass(PROCESS_MODE_BACKGROUND_BEGIN)``: low CPU,
  very-low I/O and low memory priority in one call. Falls back to
  IDLE_PRIORITY_CLASS if background mode is refused.
* macOS: ``setpriority(PRIO_DARWIN_PROCESS, 0, PRIO_DARWIN_BG)``, which is
  what ``taskpolicy -b`` does (background CPU, throttled disk and network),
  plus ``setiopolicy_np(IOPOL_THROTTLE)`` for disk I/O.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
from dataclasses import dataclass, field

NICE = 19

# linux/ioprio.h
IOPRIO_CLASS_SHIFT = 13
IOPRIO_CLASS_NONE, IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE = 0, 1, 2, 3
IOPRIO_WHO_PROCESS = 1
SYS_IOPRIO = {  # machine -> (ioprio_set, ioprio_get) syscall numbers
    "x86_64": (251, 252),
    "amd64": (251, 252),
    "aarch64": (30, 31),
    "arm64": (30, 31),
    "i386": (289, 290),
    "i686": (289, 290),
    "armv7l": (314, 315),
    "ppc64le": (273, 274),
    "s390x": (282, 283),
}

# Windows
PROCESS_MODE_BACKGROUND_BEGIN = 0x00100000
IDLE_PRIORITY_CLASS = 0x00000040
ERROR_PROCESS_MODE_ALREADY_BACKGROUND = 402

# macOS
PRIO_DARWIN_PROCESS = 4
PRIO_DARWIN_BG = 0x1000
IOPOL_TYPE_DISK, IOPOL_SCOPE_PROCESS, IOPOL_THROTTLE = 0, 0, 3


@dataclass
class PriorityReport:
    """What was lowered and what could not be, for ``agent status``."""

    applied: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = ", ".join(self.applied) or "unchanged"
        return text + (f" (could not: {'; '.join(self.failed)})" if self.failed else "")


def ioprio_value(cls: int, level: int) -> int:
    return (cls << IOPRIO_CLASS_SHIFT) | level


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def ioprio_get(tid: int = 0, libc=None) -> tuple[int, int]:
    """(class, level) of a thread, from the kernel (Linux only)."""
    _, get = SYS_IOPRIO[platform.machine().lower()]
    libc = libc or _libc()
    value = libc.syscall(get, IOPRIO_WHO_PROCESS, tid)
    if value < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return value >> IOPRIO_CLASS_SHIFT, value & ((1 << IOPRIO_CLASS_SHIFT) - 1)


def _linux(report: PriorityReport, io: str) -> None:
    tids = [0]
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        pass
    try:
        for tid in tids:
            os.setpriority(os.PRIO_PROCESS, tid, NICE)
        report.applied.append(f"nice {NICE}")
    except OSError as exc:
        report.failed.append(f"nice: {exc}")
    cls, level = (IOPRIO_CLASS_IDLE, 0) if io == "idle" else (IOPRIO_CLASS_BE, 7)
    numbers = SYS_IOPRIO.get(platform.machine().lower())
    if numbers is None:
        report.failed.append(f"ioprio: unknown syscall number on {platform.machine()}")
        return
    libc = _libc()
    for tid in tids:
        if libc.syscall(numbers[0], IOPRIO_WHO_PROCESS, tid, ioprio_value(cls, level)) != 0:
            err = ctypes.get_errno()
            report.failed.append(f"ioprio_set: {os.strerror(err)}")
            return
    report.applied.append("I/O idle class" if io == "idle" else "I/O best-effort level 7")


def _windows(report: PriorityReport, kernel32=None) -> None:
    kernel32 = kernel32 or ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    process = kernel32.GetCurrentProcess()
    if kernel32.SetPriorityClass(process, PROCESS_MODE_BACKGROUND_BEGIN):
        report.applied.append("Windows background processing mode")
        return
    err = ctypes.get_last_error() if hasattr(ctypes, "get_last_error") else 0
    if err == ERROR_PROCESS_MODE_ALREADY_BACKGROUND:
        report.applied.append("Windows background processing mode (already on)")
        return
    if kernel32.SetPriorityClass(process, IDLE_PRIORITY_CLASS):
        report.applied.append("idle priority class")
        report.failed.append(f"background mode refused (error {err})")
    else:
        report.failed.append(f"SetPriorityClass failed (error {err})")


def _macos(report: PriorityReport, libc=None, setpriority=os.setpriority) -> None:
    try:
        setpriority(PRIO_DARWIN_PROCESS, 0, PRIO_DARWIN_BG)
        report.applied.append("darwin background (taskpolicy -b)")
    except OSError as exc:
        report.failed.append(f"PRIO_DARWIN_BG: {exc}")
    libc = libc or _libc()
    if libc.setiopolicy_np(IOPOL_TYPE_DISK, IOPOL_SCOPE_PROCESS, IOPOL_THROTTLE) == 0:
        report.applied.append("disk I/O throttled")
    else:
        report.failed.append(f"setiopolicy_np: {os.strerror(ctypes.get_errno())}")


def background(io: str = "low", platform_name: str = sys.platform) -> PriorityReport:
    """Lower this process to background CPU and I/O priority.

    ``io`` is "low" (Linux best-effort 7) or "idle" (Linux idle class).
    Never raises: what could not be done is in the report.
    """
    report = PriorityReport()
    try:
        if platform_name.startswith("linux"):
            _linux(report, io)
        elif platform_name == "win32":
            _windows(report)
        elif platform_name == "darwin":
            _macos(report)
        else:
            os.nice(NICE - os.nice(0))
            report.applied.append(f"nice {NICE}")
    except Exception as exc:  # priority is comfort, never a reason to not back up
        report.failed.append(f"{type(exc).__name__}: {exc}")
    return report
