"""Pause on battery / metered networks, resume automatically."""

from __future__ import annotations

import ctypes
import threading
import time
from collections import namedtuple

from agent import power
from agent.platform.com import ComObject
from tests.agent.open_files.fakecom import FakeComObject

Battery = namedtuple("Battery", "percent secsleft power_plugged")  # psutil's sbattery

NMCLI = """\
GENERAL.DEVICE:wlp2s0
GENERAL.STATE:100 (connected)
GENERAL.METERED:{wifi}
GENERAL.DEVICE:enp0s31f6
GENERAL.STATE:20 (unavailable)
GENERAL.METERED:yes
GENERAL.DEVICE:lo
GENERAL.STATE:100 (connected (externally))
GENERAL.METERED:no
"""


def test_battery_probe():
    assert power.battery_reason(lambda: Battery(43.4, 5000, False)) == "on battery (43 %)"
    assert power.battery_reason(lambda: Battery(43.4, -2, True)) is None
    assert power.battery_reason(lambda: None) is None  # a desktop
    assert power.battery_reason(lambda: Battery(80, -1, None)) is None  # unknown: do not pause
    power.battery_reason()  # the real psutil call on this machine: must not raise


def test_nmcli_probe(recorded):
    def probe(output, rc=0):
        return power.nmcli_metered_reason(recorded([(["nmcli"], (rc, output, ""))]))

    assert probe(NMCLI.format(wifi="yes (guessed)")) == "on a metered network (wlp2s0)"
    assert probe(NMCLI.format(wifi="yes")) == "on a metered network (wlp2s0)"
    assert probe(NMCLI.format(wifi="no")) is None  # the metered ethernet is not connected
    assert probe(NMCLI.format(wifi="unknown")) is None
    assert probe("", rc=127) is None  # no NetworkManager: cannot tell


def test_windows_network_cost_through_com():
    def create(cost):
        def make(iface):
            def get_cost(out, dest):
                assert dest is None
                out[0] = cost

            fake = FakeComObject(iface, {"GetCost": get_cost})
            make.fake = fake
            return ComObject(fake.ptr, iface)

        return make

    assert power.windows_metered_reason(create(power.NLM_CONNECTION_COST_UNRESTRICTED)) is None
    variable = create(power.NLM_CONNECTION_COST_VARIABLE)
    assert power.windows_metered_reason(variable) == "on a metered network"
    assert variable.fake.refs == 0, "the COM object is released"
    roaming = power.NLM_CONNECTION_COST_VARIABLE | power.NLM_CONNECTION_COST_ROAMING
    assert power.windows_metered_reason(create(roaming)) == "on a roaming connection"
    assert ctypes.sizeof(ctypes.c_uint32) == 4


def test_gate_pauses_and_resumes_by_itself():
    state = {"battery": "on battery (12 %)", "metered": None}
    gate = power.PauseGate(pause_on_battery=True, pause_on_metered=True, poll=0.05,
                           battery=lambda: state["battery"], metered=lambda: state["metered"])  # fmt: skip
    assert gate.check() == "paused: on battery (12 %)"
    assert gate.status()["paused"] and gate.status()["since"] is not None
    seen = []
    cleared = threading.Event()

    def worker():
        if gate.wait_until_clear(on_change=seen.append):
            cleared.set()

    t = threading.Thread(target=worker)
    t.start()
    time.sleep(0.2)
    assert not cleared.is_set()
    state["metered"] = "on a metered network (wlp2s0)"
    time.sleep(0.2)
    state["battery"] = state["metered"] = None  # plugged in, back on the office Wi-Fi
    t.join(5)
    assert cleared.is_set()
    assert seen == [
        "paused: on battery (12 %)",
        "paused: on battery (12 %); on a metered network (wlp2s0)",
        None,
    ]
    assert gate.status() == {"paused": False, "reason": None, "since": None}


def test_gate_off_by_policy_hold_release_and_cancel():
    gate = power.PauseGate(battery=lambda: "on battery (50 %)", metered=lambda: None, poll=0.05)
    assert gate.check() is None, "the policy does not ask to pause on battery"
    gate.configure(pause_on_battery=True, pause_on_metered=False)
    assert gate.check() == "paused: on battery (50 %)"
    gate.configure(pause_on_battery=False, pause_on_metered=False)
    gate.hold("backups paused from the console until 14:00")
    assert gate.check() == "paused: backups paused from the console until 14:00"
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    assert gate.wait_until_clear(cancel) is False
    threading.Timer(0.1, gate.release).start()
    start = time.monotonic()
    assert gate.wait_until_clear() is True
    assert time.monotonic() - start < 2, "release wakes the waiter at once"


def test_probes_are_cached_between_checks():
    calls = []
    clock = [0.0]
    gate = power.PauseGate(pause_on_battery=True, battery=lambda: calls.append(1),
                           min_interval=5, clock=lambda: clock[0])  # fmt: skip
    gate.check()
    gate.check()
    assert len(calls) == 1
    clock[0] = 6
    gate.check()
    assert len(calls) == 2


def test_one_shot_pause_reason(monkeypatch):
    monkeypatch.setattr(power, "battery_reason", lambda: "on battery (9 %)")
    monkeypatch.setattr(power, "metered_reason", lambda: None)
    assert power.pause_reason() is None
    assert power.pause_reason(pause_on_battery=True) == "paused: on battery (9 %)"
    assert power.pause_reason(pause_on_metered=True) is None
