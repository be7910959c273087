"""The offline lease and repository view (agent/daemon/offline.py): what an
agent may write and read while no gateway answers."""

from __future__ import annotations

import stat
import time

import pytest

from agent.daemon.offline import OfflineSupport, OfflineUnavailable, Slot, SpoolLease


def _lease(n: int, *, issued: float | None = None, ttl: float = 7 * 86400) -> SpoolLease:
    issued = time.time() if issued is None else issued
    slots = [
        Slot(f"s{i}", f"http://o/{i}", {"If-None-Match": "*"}, f"http://t/{i}", {})
        for i in range(n)
    ]
    return SpoolLease(issued_at=issued, expires_at=issued + ttl, slots=slots)


def test_a_lease_is_used_only_once_armed_and_each_slot_once_even_across_restarts(tmp_path):
    off = OfflineSupport(tmp_path)
    assert off.renewal_due()
    off.replace_lease(_lease(3))
    with pytest.raises(OfflineUnavailable, match="no offline upload lease"):
        off.take_slot()  # not armed: the view may be older than the lease
    off.arm()
    assert off.take_slot().id == "s0"
    # A restart (crash) after taking a slot never hands it out again.
    again = OfflineSupport(tmp_path)
    assert [again.take_slot().id, again.take_slot().id] == ["s1", "s2"]
    with pytest.raises(OfflineUnavailable, match="all 3 offline upload slots are used"):
        again.take_slot()
    assert again.renewal_due()
    # The bearer URLs are readable by the agent's user only.
    assert stat.S_IMODE((tmp_path / "lease.json").stat().st_mode) == 0o600


def test_an_expired_lease_is_refused_and_a_new_one_replaces_the_old(tmp_path):
    off = OfflineSupport(tmp_path)
    off.replace_lease(_lease(4, issued=time.time() - 8 * 86400))
    off.arm()
    with pytest.raises(OfflineUnavailable, match="expired"):
        off.take_slot()
    off.replace_lease(_lease(4))
    with pytest.raises(OfflineUnavailable):
        off.take_slot()  # the new lease waits for its view
    off.arm()
    assert off.take_slot().id == "s0" and not off.renewal_due()


def test_the_view_serves_listings_and_small_objects_and_adds_what_waits_in_the_spool(tmp_path):
    off = OfflineSupport(tmp_path)
    with pytest.raises(OfflineUnavailable, match="never listed"):
        off.listing("index/")
    assert off.record_listing("index/", ["index/a", "index/b"]) == ["index/a", "index/b"]
    assert off.record_listing("data/", ["data/00/x"]) == ["data/00/x"]  # not mirrored
    off.record_object("config", b"{}")
    off.record_object("keys/k1", b"key")
    off.record_object("index/a", b"big")  # in the engine's cache, not here
    off.spooled("index/c")
    off.spooled("data/00/y")  # packs are never listed by a backup: not tracked

    again = OfflineSupport(tmp_path)
    assert again.listing("index/") == ["index/a", "index/b", "index/c"]
    assert again.object("config") == b"{}" and again.object("keys/k1") == b"key"
    with pytest.raises(OfflineUnavailable, match="index/a"):
        again.object("index/a")
    assert again.knows("index/c") and again.knows("config") and not again.knows("index/z")
    assert again.describe()["waiting_for_promotion"] == 1
    # Promoted: the real listing has it, it is no longer pending.
    assert again.record_listing("index/", ["index/a", "index/b", "index/c"])[-1] == "index/c"
    assert again.describe()["waiting_for_promotion"] == 0
    # A spooled key the console never files (refused) is not listed forever.
    again.spooled("snapshots/s")
    again._view["pending"]["snapshots/s"] = time.time() - 30 * 86400
    assert again.record_listing("snapshots/", []) == []
