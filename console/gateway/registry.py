"""Which gateway instance holds which device's stream, in Redis.

Keys (all under ``REDIS_KEY_PREFIX``):

* ``gw:dev:<device>`` → gateway instance id, with a TTL a few heartbeats long,
  refreshed in batches by the gateway that holds the stream and deleted when
  the stream ends (only by the instance that owns it);
* ``gw:inst:<instance>`` → ``1`` with a TTL: the instance is alive;
* channel ``gw:chan:<instance>``: messages for one instance (deliver a
  command, close a revoked device's stream, push a policy);
* channel ``gw:all``: messages for every instance (revocations).

Celery tasks use :class:`Registry` (sync); the gateway uses
:class:`AsyncRegistry`. Without Redis (embedded development setup) both are
inert and the gateway's periodic sweep delivers commands from the database.
"""

from __future__ import annotations

import asyncio
import json
import logging

import redis
import redis.asyncio as aioredis

from console.gateway import conf

log = logging.getLogger(__name__)

# Compare-and-delete: remove the device key only if this instance still owns it.
_DEL_IF_OWNER = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def _k(*parts: str) -> str:
    return conf.redis_prefix() + ":".join(parts)


def device_key(device_id: str) -> str:
    return _k("gw", "dev", str(device_id))


def instance_key(instance: str) -> str:
    return _k("gw", "inst", instance)


def channel(instance: str) -> str:
    return _k("gw", "chan", instance)


def broadcast_channel() -> str:
    return _k("gw", "all")


class Registry:
    """Synchronous side, used by Celery tasks and Django signals."""

    def __init__(self, url: str | None = None):
        url = conf.redis_url() if url is None else url
        self.enabled = bool(url)
        if self.enabled:
            self.r = redis.Redis.from_url(url, socket_timeout=5, decode_responses=True)

    def locate(self, device_id: str) -> str | None:
        """The live instance holding the device's stream, if any."""
        if not self.enabled:
            return None
        instance = self.r.get(device_key(device_id))
        if instance and self.r.exists(instance_key(instance)):
            return instance
        return None

    def publish(self, instance: str, message: dict) -> int:
        """Number of gateway processes that received it (0: none listening)."""
        if not self.enabled:
            return 0
        return int(self.r.publish(channel(instance), json.dumps(message)))

    def broadcast(self, message: dict) -> int:
        if not self.enabled:
            return 0
        return int(self.r.publish(broadcast_channel(), json.dumps(message)))

    def online_devices(self) -> set[str]:
        """Devices whose stream is registered (SCAN; for maintenance tasks)."""
        if not self.enabled:
            return set()
        prefix = device_key("")
        return {k[len(prefix) :] for k in self.r.scan_iter(match=prefix + "*", count=1000)}


class AsyncRegistry:
    """The gateway's side: register streams in batches, listen for messages."""

    def __init__(self, instance: str, url: str | None = None, ttl: int | None = None):
        url = conf.redis_url() if url is None else url
        self.instance = instance
        self.enabled = bool(url)
        self.ttl = ttl or max(30, 3 * conf.heartbeat_interval())
        if self.enabled:
            # A bounded pool that waits for a free connection rather than
            # failing when thousands of streams open at once.
            pool = aioredis.BlockingConnectionPool.from_url(
                url, max_connections=16, timeout=30, decode_responses=True
            )
            self.r = aioredis.Redis(connection_pool=pool)
            self._del = self.r.register_script(_DEL_IF_OWNER)

    async def alive(self) -> None:
        if self.enabled:
            await self.r.set(instance_key(self.instance), "1", ex=self.ttl)

    async def register(self, device_ids) -> None:
        """Claim (or refresh) devices in one round trip."""
        if not self.enabled or not device_ids:
            return
        async with self.r.pipeline(transaction=False) as pipe:
            for d in device_ids:
                pipe.set(device_key(d), self.instance, ex=self.ttl)
            await pipe.execute()

    async def unregister(self, device_id: str) -> None:
        if self.enabled:
            await self._del(keys=[device_key(device_id)], args=[self.instance])

    async def shutdown(self, device_ids) -> None:
        if not self.enabled:
            return
        async with self.r.pipeline(transaction=False) as pipe:
            for d in device_ids:
                pipe.eval(_DEL_IF_OWNER, 1, device_key(d), self.instance)
            pipe.delete(instance_key(self.instance))
            await pipe.execute()
        await self.r.aclose()

    async def listen(self, handler) -> None:
        """Call ``handler(message_dict)`` for each message to this instance or
        to all; reconnects on errors until cancelled."""
        if not self.enabled:
            return
        while True:
            try:
                pubsub = self.r.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(channel(self.instance), broadcast_channel())
                async for item in pubsub.listen():
                    if item.get("type") != "message":
                        continue
                    try:
                        await handler(json.loads(item["data"]))
                    except Exception:
                        log.exception("gateway message handler failed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Redis pub/sub lost (%s); resubscribing", exc)
                await asyncio.sleep(1)
