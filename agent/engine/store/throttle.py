"""Upload bandwidth limit: a token bucket and the store wrapper that applies it.

``TokenBucket`` is a thread-safe rate limiter in the GCRA form: each
``consume(n)`` reserves the next n bytes of the schedule and sleeps until that
reservation starts, so several upload threads share one limit fairly and the
long-run rate never exceeds it; an idle period earns at most ``burst`` bytes
of credit, so a pause cannot be followed by an unbounded burst.

``ThrottledStore`` wraps any ``ObjectStore``: every ``put`` waits for its
bytes (and for the pause gate, if one is given) before reaching the inner
store. The pacing is per object, not per TCP segment: a 4 MiB pack leaves at
line speed once its turn has come. Over any window longer than a few objects
the limit holds (tests/agent/comfort/test_throttle.py measures it over 30 s
against S3); finer, socket-level pacing would need a hook in the S3 client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from agent.engine.store.base import ObjectStore

__all__ = ["Cancelled", "ThrottledStore", "TokenBucket"]


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

    @property
    def spooled_objects(self) -> int:  # type: ignore[override]
        return self.inner.spooled_objects

    def close(self) -> None:
        self.inner.close()
