"""Upload bandwidth limit and optional CPU ceiling.

``TokenBucket`` is a thread-safe rate limiter in the GCRA form: each
``consume(n)`` reserves the next n bytes of the schedule and sleeps until that
reservation starts, so several upload threads share one limit fairly and the
long-run rate never exceeds it; an idle period earns at most ``burst`` bytes
of credit, so a pause cannot be followed by an unbounded burst.

``ThrottledStore`` wraps any ``ObjectStore``: every ``put`` waits for its
bytes (and for the pause gate, if one is given) before reaching the inner
store. The pacing is per object, not per TCP segment: a 4 MiB pack leaves at
line speed once its turn has come. Over any window longer than a few objects
the limit holds (tests/agent/open_files/test_throttle.py measures it over 30 s
against S3); finer, socket-level pacing would need a hook in the S3 client.

``CpuCeiling`` holds the agent's own CPU use (all threads) to a fraction of
the machine: pipeline workers call ``pace()`` between pieces of work and are
put to sleep when the process has used more than its share.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

from agent.engine.store import ObjectStore


class Cancelled(Exception):
    """A wait was cancelled (the job is being cancelled or the agent stops)."""


class TokenBucket:
    """At most ``rate`` bytes per second, with up to ``burst`` bytes of credit."""

    def __init__(
        self,
        rate: float | None,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ):
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._tat = clock()  # theoretical arrival time of the next byte
        self.rate: float | None = None
        self.burst = 0.0
        self.set_rate(rate, burst)

    def set_rate(self, rate: float | None, burst: float | None = None) -> None:
        """Change the limit (a new policy); None or 0 means unlimited."""
        with self._lock:
            self.rate = float(rate) if rate else None
            if self.rate:
                # Default credit: a quarter second, but never less than 64 KiB so
                # small limits still move whole requests.
                self.burst = float(burst) if burst is not None else max(self.rate / 4, 65536)
                # Start with no credit: the limit holds from the first second,
                # and idle periods later earn at most ``burst``.
                self._tat = self._clock() + self.burst / self.rate

    def reserve(self, n: int) -> float:
        """Reserve ``n`` bytes; return how long to wait before sending them."""
        with self._lock:
            if not self.rate:
                return 0.0
            now = self._clock()
            burst_time = self.burst / self.rate
            start = max(now, self._tat - burst_time)
            self._tat = max(self._tat, now) + n / self.rate
            return max(0.0, start - now)

    def consume(self, n: int, cancel: threading.Event | None = None) -> None:
        delay = self.reserve(n)
        if delay <= 0:
            return
        if self._sleep is not None:
            self._sleep(delay)
        elif cancel is not None:
            if cancel.wait(delay):
                raise Cancelled("upload cancelled while throttled")
        else:
            time.sleep(delay)


class ThrottledStore(ObjectStore):
    """An ObjectStore whose uploads go through a TokenBucket (and a pause gate).

    ``gate`` is anything with ``wait_until_clear(cancel) -> bool`` (a
    ``agent.power.PauseGate``): uploads stop while on battery or on a metered
    network and resume by themselves.
    """

    def __init__(
        self,
        inner: ObjectStore,
        limiter: TokenBucket,
        *,
        gate=None,
        cancel: threading.Event | None = None,
    ):
        self.inner = inner
        self.limiter = limiter
        self.gate = gate
        self.cancel = cancel
        self.location = inner.location
        self.max_read_range = inner.max_read_range
        self.bytes_sent = 0
        self._count_lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        if self.gate is not None and not self.gate.wait_until_clear(self.cancel):
            raise Cancelled("upload cancelled while paused")
        self.limiter.consume(len(data), self.cancel)
        self.inner.put(key, data)
        with self._count_lock:
            self.bytes_sent += len(data)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(key, offset, length)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def close(self) -> None:
        self.inner.close()


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
