"""Pause on battery and on metered networks; resume by itself.

``PauseGate`` is what the daemon and the upload path share::

    gate = PauseGate(pause_on_battery=policy.pause_on_battery,
                     pause_on_metered=policy.pause_on_metered)
    reason = gate.check()            # None, or e.g. "on battery (43 %)"
    gate.wait_until_clear(cancel)    # blocks while paused; False if cancelled
    gate.status()                    # {"paused": ..., "reason": ..., "since": ...}

``reason`` is a sentence for ``agent status`` and the console. Uploads
stop at the next object (``agent.engine.store.throttle.ThrottledStore(gate=...)``) and the
run resumes where it was once the condition clears; nothing is lost.

What each OS can tell us:

* Battery, every OS: ``psutil.sensors_battery()`` (``power_plugged`` False
  means running on battery; a desktop has no battery and is never paused).
* Metered network:
  - Windows: the Network List Manager's ``INetworkCostManager::GetCost``
    (COM, no extra dependency): Fixed/Variable cost, roaming or over the data
    limit count as metered - the same signal Windows Update uses.
  - Linux: NetworkManager, ``nmcli -t -f GENERAL.DEVICE,GENERAL.STATE,
    GENERAL.METERED dev show``; a connected device that is metered ("yes" or
    NetworkManager's "yes (guessed)", e.g. a phone hotspot) counts. Without
    NetworkManager we cannot tell and never pause.
  - macOS: only Network.framework knows (``NWPath.isExpensive`` /
    ``isConstrained``), which needs a native helper or PyObjC; not available
    here, so macOS is never paused for metered networks (documented).
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from collections.abc import Callable

from agent.snapshots.runner import Runner, run

Probe = Callable[[], str | None]


# -- battery ------------------------------------------------------------------
def battery_reason(sensors=None) -> str | None:
    if sensors is None:
        import psutil

        sensors = getattr(psutil, "sensors_battery", lambda: None)
    try:
        battery = sensors()
    except Exception:  # some platforms raise instead of returning None
        return None
    if battery is None or battery.power_plugged is None or battery.power_plugged:
        return None
    return f"on battery ({battery.percent:.0f} %)"


# -- metered network ---------------------------------------------------------------
def nmcli_metered_reason(runner: Runner = run) -> str | None:
    res = runner(
        ["nmcli", "-t", "-f", "GENERAL.DEVICE,GENERAL.STATE,GENERAL.METERED", "dev", "show"],
        timeout=10,
    )
    if not res.ok:
        return None  # no NetworkManager: we cannot tell
    device, state = "", ""
    for line in res.stdout.splitlines():
        key, _, value = line.partition(":")
        if key == "GENERAL.DEVICE":
            device, state = value, ""
        elif key == "GENERAL.STATE":
            state = value
        elif key == "GENERAL.METERED" and state.startswith("100") and value.startswith("yes"):
            return f"on a metered network ({device})"
    return None


NLM_CONNECTION_COST_UNRESTRICTED = 0x1
NLM_CONNECTION_COST_FIXED = 0x2
NLM_CONNECTION_COST_VARIABLE = 0x4
NLM_CONNECTION_COST_OVERDATALIMIT = 0x10000
NLM_CONNECTION_COST_ROAMING = 0x40000
CLSID_NETWORK_LIST_MANAGER = "DCB00C01-570F-4A9B-8D69-199FDBA5723B"
IID_INETWORK_COST_MANAGER = "DCB00008-570F-4A9B-8D69-199FDBA5723B"


def _cost_interface():
    from agent.platform import com

    return com.interface(
        "INetworkCostManager",
        {"GetCost": (3, [ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p])},
    )


def windows_metered_reason(create=None) -> str | None:
    """Ask the Network List Manager what the internet connection costs."""
    from agent.platform import com

    iface = _cost_interface()
    try:
        if create is None:  # pragma: no cover - Windows only
            com.initialise()
            manager = com.create_instance(
                CLSID_NETWORK_LIST_MANAGER, iface, IID_INETWORK_COST_MANAGER
            )
        else:
            manager = create(iface)
    except OSError:
        return None
    try:
        cost = ctypes.c_uint32()
        if com.failed(manager.GetCost(ctypes.byref(cost), None)):
            return None
    finally:
        manager.release()
    value = cost.value
    if value & NLM_CONNECTION_COST_ROAMING:
        return "on a roaming connection"
    if value & NLM_CONNECTION_COST_OVERDATALIMIT:
        return "on a metered network (over its data limit)"
    if value & (NLM_CONNECTION_COST_FIXED | NLM_CONNECTION_COST_VARIABLE):
        return "on a metered network"
    return None


def metered_reason(platform: str = sys.platform) -> str | None:
    if platform == "win32":
        return windows_metered_reason()
    if platform.startswith("linux"):
        return nmcli_metered_reason()
    return None  # macOS: see the module docstring


def pause_reason(*, pause_on_battery: bool = False, pause_on_metered: bool = False) -> str | None:
    """One-shot check (the daemon's scheduler): why a backup should wait now."""
    reasons = []
    if pause_on_battery and (r := battery_reason()):
        reasons.append(r)
    if pause_on_metered and (r := metered_reason()):
        reasons.append(r)
    return "paused: " + "; ".join(reasons) if reasons else None


# -- the gate -----------------------------------------------------------------------
class PauseGate:
    """Whether the agent should hold its work now, and why.

    Probes are re-evaluated at most every ``min_interval`` seconds (asking
    NetworkManager or COM on every uploaded object would be wasteful).
    """

    def __init__(
        self,
        *,
        pause_on_battery: bool = False,
        pause_on_metered: bool = False,
        battery: Probe = battery_reason,
        metered: Probe = metered_reason,
        min_interval: float = 5.0,
        poll: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._lock = threading.Lock()
        self.pause_on_battery = pause_on_battery
        self.pause_on_metered = pause_on_metered
        self.battery, self.metered = battery, metered
        self.min_interval, self.poll, self.clock = min_interval, poll, clock
        self._held: str | None = None
        self._checked_at: float | None = None
        self._reason: str | None = None
        self._since: float | None = None  # wall-clock time the current pause began
        self._changed = threading.Event()

    def configure(self, *, pause_on_battery: bool, pause_on_metered: bool) -> None:
        """A new policy: takes effect at the next check."""
        with self._lock:
            self.pause_on_battery, self.pause_on_metered = pause_on_battery, pause_on_metered
            self._checked_at = None
        self._changed.set()

    def hold(self, reason: str) -> None:
        """Pause on request (e.g. the user or the console paused backups)."""
        with self._lock:
            self._held, self._checked_at = reason, None
        self._changed.set()

    def release(self) -> None:
        with self._lock:
            self._held, self._checked_at = None, None
        self._changed.set()

    def check(self, force: bool = False) -> str | None:
        """The reason to pause now, or None to go ahead."""
        with self._lock:
            now = self.clock()
            fresh = self._checked_at is not None and now - self._checked_at < self.min_interval
            if fresh and not force:
                return self._reason
            reasons = []
            if self._held:
                reasons.append(self._held)
            if self.pause_on_battery and (r := self.battery()):
                reasons.append(r)
            if self.pause_on_metered and (r := self.metered()):
                reasons.append(r)
            reason = "paused: " + "; ".join(reasons) if reasons else None
            if reason and not self._reason:
                self._since = time.time()
            elif not reason:
                self._since = None
            self._reason, self._checked_at = reason, now
            return reason

    def wait_until_clear(
        self,
        cancel: threading.Event | None = None,
        on_change: Callable[[str | None], object] | None = None,
    ) -> bool:
        """Block while paused. True when clear, False if ``cancel`` was set.

        ``on_change`` is told each new reason (and None on resume), so the
        daemon can report the pause to the console as it happens.
        """
        last = self.check()
        if last is None:
            return True
        if on_change:
            on_change(last)
        while True:
            self._changed.clear()
            deadline = time.monotonic() + self.poll
            while time.monotonic() < deadline:
                if cancel is not None and cancel.is_set():
                    return False
                if self._changed.wait(min(0.2, self.poll)):
                    break
            reason = self.check(force=True)
            if reason != last and on_change:
                on_change(reason)
            if reason is None:
                return True
            last = reason

    def status(self) -> dict:
        """For ``agent status`` and heartbeats: the last known state."""
        with self._lock:
            return {
                "paused": self._reason is not None,
                "reason": self._reason,
                "since": self._since,
            }
