"""Background priority, read back from the kernel (/proc and ioprio_get)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent import priority

ROOT = Path(__file__).resolve().parents[3]

PROBE = r"""
import json, os, sys, threading
from agent import priority
early = threading.Thread(target=lambda: __import__("time").sleep(2), daemon=True)
early.start()  # a thread that exists before the call must be lowered too
report = priority.background(io=sys.argv[1])
def nice_of(path):
    # field 19 of stat, counted after the ")" that ends the command name
    return int(open(path).read().rsplit(")", 1)[1].split()[16])
late = {}
t = threading.Thread(target=lambda: late.update(ioprio=priority.ioprio_get(0)))
t.start(); t.join()
print(json.dumps({
    "applied": report.applied, "failed": report.failed,
    "nice": nice_of("/proc/self/stat"),
    "early_nice": nice_of(f"/proc/self/task/{early.native_id}/stat"),
    "ioprio": priority.ioprio_get(0),
    "early_ioprio": priority.ioprio_get(early.native_id),
    "late_ioprio": late["ioprio"],
}))
"""


def probe(io: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, io], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60)  # fmt: skip
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_linux_background_priority_is_read_back_from_the_kernel():
    got = probe("low")
    assert got["failed"] == []
    assert got["nice"] == 19 and got["early_nice"] == 19
    be7 = [priority.IOPRIO_CLASS_BE, 7]
    assert got["ioprio"] == be7 and got["early_ioprio"] == be7 and got["late_ioprio"] == be7


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_linux_idle_io_class():
    got = probe("idle")
    assert got["ioprio"][0] == priority.IOPRIO_CLASS_IDLE
    assert "I/O idle class" in got["applied"]


class FakeKernel32:
    """Records SetPriorityClass calls; answers like Windows would."""

    def __init__(self, results):
        self.results, self.calls = list(results), []

    def GetCurrentProcess(self):  # noqa: N802 - the Windows API's name
        return -1  # the pseudo-handle Windows returns

    def SetPriorityClass(self, handle, value):  # noqa: N802
        self.calls.append((handle, value))
        return self.results.pop(0)


def test_windows_uses_background_processing_mode():
    k = FakeKernel32([1])
    report = priority.PriorityReport()
    priority._windows(report, kernel32=k)
    assert k.calls == [(-1, priority.PROCESS_MODE_BACKGROUND_BEGIN)]
    assert report.applied == ["Windows background processing mode"]


def test_windows_falls_back_to_idle_class():
    k = FakeKernel32([0, 1])
    report = priority.PriorityReport()
    priority._windows(report, kernel32=k)
    assert k.calls[1] == (-1, priority.IDLE_PRIORITY_CLASS)
    assert report.applied == ["idle priority class"]


def test_macos_sets_darwin_background_and_io_throttle():
    calls = []

    class Libc:
        def setiopolicy_np(self, *args):
            calls.append(("setiopolicy_np", args))
            return 0

    report = priority.PriorityReport()
    priority._macos(report, libc=Libc(), setpriority=lambda *a: calls.append(("setpriority", a)))
    assert calls == [("setpriority", (4, 0, 0x1000)), ("setiopolicy_np", (0, 0, 3))]
    assert report.failed == []
