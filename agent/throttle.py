"""Optional CPU ceiling for the agent's own work.

``CpuCeiling`` holds the agent's own CPU use (all threads) to a fraction of
the machine: pipeline workers call ``pace()`` between pieces of work and are
put to sleep when the process has used more than its share.

The upload bandwidth limit (``TokenBucket``, ``ThrottledStore``) is a store
wrapper and lives with the stores: ``agent/engine/store/throttle.py``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from agent.engine.store.throttle import Cancelled

__all__ = ["Cancelled", "CpuCeiling"]


class CpuCeiling:
    """Keep this process's CPU use (all threads) under ``percent`` of the machine.

    ``percent`` is of the whole machine: 25 on a 4-core laptop means one
    core's worth. Workers call ``pace()`` often (per chunk); it compares the
    process's CPU time with the wall time since the window began and sleeps
    the caller long enough to bring the average back under the ceiling. A
    window restarts every few seconds so an idle spell does not bank credit.
    """

    WINDOW = 2.0

    def __init__(self, percent: float | None, cpus: int | None = None):
        self.cpus = cpus or os.cpu_count() or 1
        self._lock = threading.Lock()
        self.set_percent(percent)

    def set_percent(self, percent: float | None) -> None:
        with self._lock:
            self.fraction = percent / 100 * self.cpus if percent else None  # in cores
            self._t0, self._cpu0 = time.monotonic(), time.process_time()

    def paced(self, progress: Callable | None = None, cancel: threading.Event | None = None):
        """A progress callback for ``run_backup`` that holds the ceiling.

        The engine calls its progress callback from the thread that reads
        files, every 0.25 s at most; sleeping there stops new chunks entering
        the pipeline, and the worker threads run dry behind it - so the whole
        backup is held without a hook inside the engine.
        """

        def callback(*args, **kwargs):
            self.pace(cancel)
            if progress is not None:
                return progress(*args, **kwargs)
            return None

        return callback

    def pace(self, cancel: threading.Event | None = None) -> None:
        with self._lock:
            if not self.fraction:
                return
            now, cpu = time.monotonic(), time.process_time()
            wall, used = now - self._t0, cpu - self._cpu0
            delay = used / self.fraction - wall  # wall time the CPU used was entitled to
            if wall > self.WINDOW and delay <= 0:
                self._t0, self._cpu0 = now, cpu
        if delay > 0:
            delay = min(delay, 1.0)  # re-check at least once a second
            if cancel is not None:
                if cancel.wait(delay):
                    raise Cancelled("cancelled while holding the CPU ceiling")
            else:
                time.sleep(delay)
