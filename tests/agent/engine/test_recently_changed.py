"""The coarse-timestamp rule behind consistent reads (agent/engine/backup_read.py)."""

import os
import time

from agent.engine.backup_read import TICK_MARGIN_NS, _recently_changed


def _stat(ctime_ns: int) -> os.stat_result:
    # os.stat_result takes the 10 visible fields, then the hidden ones:
    # float atime/mtime/ctime, then atime_ns, mtime_ns, ctime_ns.
    visible = [0o100644, 1, 1, 1, 0, 0, 10, 0, 0, 0]
    return os.stat_result(visible + [0.0, 0.0, 0.0, 0, 0, ctime_ns])


def test_a_file_changed_just_before_the_read_is_distrusted():
    start = time.time_ns()
    assert _recently_changed(_stat(start - TICK_MARGIN_NS // 2), start, TICK_MARGIN_NS)
    assert not _recently_changed(_stat(start - 5 * TICK_MARGIN_NS), start, TICK_MARGIN_NS)


def test_a_change_during_a_long_read_is_distrusted():
    """A read that took longer than the clock-skew allowance (a big file on a
    busy PC) must still distrust a file changed while it was being read."""
    start = time.time_ns() - 5_000_000_000  # the read began 5 s ago
    changed_during = start + 4_000_000_000
    assert _recently_changed(_stat(changed_during), start, TICK_MARGIN_NS)


def test_a_ctime_from_a_skewed_clock_is_not_inferred_from():
    start = time.time_ns()
    assert not _recently_changed(_stat(start + 3600 * 10**9), start, TICK_MARGIN_NS)
