"""One agent's open ``Connect`` stream, as the gateway holds it: a queue the
stream's writer drains, and what was sent on it and acknowledged."""

from __future__ import annotations

import asyncio
import time

import grpc

#: queued to end the stream: (CLOSE, status code, reason)
CLOSE = object()


class Session:
    __slots__ = (
        "device_id",
        "queue",
        "policy_sent",
        "policy_sent_at",
        "applied",
        "facts",
        "seen_written",
        "sent",
    )

    def __init__(self, device_id: str):
        self.device_id = device_id
        self.queue: asyncio.Queue = asyncio.Queue()
        self.policy_sent = ""
        self.policy_sent_at = 0.0
        self.applied = ""
        self.facts: dict = {}
        self.seen_written = time.monotonic()  # the stream's opening wrote it
        self.sent: dict[str, str] = {}  # command id -> policy hash it carried ('' if none)

    def send(self, msg) -> None:
        self.queue.put_nowait(msg)

    def close(self, code: grpc.StatusCode, reason: str) -> None:
        self.queue.put_nowait((CLOSE, code, reason))

    def sent_recently(self, digest: str, within: float = 60.0) -> bool:
        """Was this policy revision pushed on this stream in the last minute?"""
        return self.policy_sent == digest and time.monotonic() - self.policy_sent_at < within

    def mark_policy_sent(self, digest: str) -> None:
        self.policy_sent, self.policy_sent_at = digest, time.monotonic()
