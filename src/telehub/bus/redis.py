"""The Redis pub/sub bus: every process publishes to Redis and hears everything back.

Publishing only appends to a bounded outbox; a background task sends it in
pipelines, so ingest never waits on Redis. If Redis is unreachable the outbox
drops its oldest messages (counted) and subscribers are told they missed some:
live data is best-effort, the durable event log is where nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from telehub.bus import codec
from telehub.bus.base import Bus
from telehub.bus.subscription import Channel, channel_of
from telehub.core.metrics import Metrics
from telehub.domain.live import BusMessage
from telehub.errors import ConfigError

log = logging.getLogger(__name__)

_OUTBOX = 10_000  # messages waiting for Redis, at most
_PIPELINE = 500
_BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class RedisBus(Bus):
    def __init__(self, *, url: str, prefix: str, metrics: Metrics, backlog: int) -> None:
        super().__init__(metrics=metrics, backlog=backlog)
        self._url = url
        self._channels = {c: f"{prefix}:{c.value}" for c in Channel}
        self._outbox: deque[BusMessage] = deque()
        self._wakeup = asyncio.Event()

    def publish(self, message: BusMessage) -> None:
        self._metrics.bus_published.inc()
        self._outbox.append(message)
        if len(self._outbox) > _OUTBOX:
            self._metrics.bus_dropped.inc(self._outbox.popleft().weight)
        self._wakeup.set()

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        # Errors surface to the loops below, which reconnect with their own backoff
        # and tell subscribers; redis-py's silent retries would hide lost messages.
        # The asyncio Retry: with the sync one, redis-py never reconnects a pub/sub
        # connection (its reconnect hook is never awaited) and the receiver fails forever.
        client: Redis = Redis.from_url(
            self._url, retry=Retry(NoBackoff(), 0), health_check_interval=10
        )
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._channels.values())
            except (RedisError, OSError) as exc:
                where = self._url.rsplit("@", 1)[-1]  # no password in the message
                raise ConfigError(
                    f"TELEHUB_BUS_URL: cannot reach Redis at {where}: {exc}"
                ) from None
            async with asyncio.TaskGroup() as tasks:
                sender = tasks.create_task(self._send(client), name="bus-redis-send")
                receiver = tasks.create_task(self._receive(pubsub), name="bus-redis-receive")
                try:
                    yield
                finally:
                    # The sender stops first (a batch in flight goes back to the outbox),
                    # so the flush neither races it nor reorders messages.
                    sender.cancel()
                    await asyncio.wait([sender])
                    await self._flush(client)
                    receiver.cancel()
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        finally:
            await client.aclose()

    async def _send(self, client: Redis) -> None:
        failures = 0
        while True:
            if not self._outbox:
                self._wakeup.clear()
                await self._wakeup.wait()
            try:
                await self._send_some(client)
                failures = 0
            except (RedisError, OSError) as exc:
                delay = _BACKOFF[min(failures, len(_BACKOFF) - 1)]
                failures += 1
                log.warning("bus: publishing to Redis failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)

    async def _send_some(self, client: Redis) -> None:
        """Send the oldest messages in one pipeline; if that fails they go back, to retry.

        They leave the outbox before the send: ``publish`` may drop the oldest
        meanwhile, which must not be the ones in flight.
        """
        batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), _PIPELINE))]
        encoded = [(m, data) for m in batch if (data := self._encode(m)) is not None]
        if not encoded:
            return
        sent = False
        try:
            async with client.pipeline(transaction=False) as pipe:
                for message, data in encoded:
                    pipe.publish(self._channels[channel_of(message)], data)
                await pipe.execute()
                sent = True
        finally:
            if not sent:
                self._outbox.extendleft(m for m, _ in reversed(encoded))
                while len(self._outbox) > _OUTBOX:
                    self._metrics.bus_dropped.inc(self._outbox.popleft().weight)

    def _encode(self, message: BusMessage) -> bytes | None:
        try:
            return codec.encode(message)
        except (TypeError, ValueError) as exc:
            # Event data JSON cannot carry (an integer beyond 64 bits in a device's
            # command result): dropped here, so it cannot stop the sender.
            self._metrics.bus_dropped.inc(message.weight)
            log.warning("bus: dropped a message that cannot be encoded: %s", exc)
            return None

    async def _flush(self, client: Redis) -> None:
        """On shutdown, what is still in the outbox goes out if Redis takes it quickly."""
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(2):
                while self._outbox:
                    await self._send_some(client)

    async def _receive(self, pubsub: PubSub) -> None:
        failures = 0
        while True:
            try:
                # A timeout, not a blocking read: redis-py health-checks the connection
                # only when called, and a silently dead one must be found.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
            except (RedisError, OSError) as exc:
                self._interrupt()
                delay = _BACKOFF[min(failures, len(_BACKOFF) - 1)]
                failures += 1
                log.warning("bus: lost Redis (%s); reconnecting in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            if failures:
                # Resubscribed: what was published while this connection was away is
                # lost too, and subscribers may have taken the first interruption by now.
                self._interrupt()
            failures = 0
            if message is None or message.get("type") != "message":
                continue
            try:
                decoded = codec.decode(message["data"])
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("bus: ignored a malformed message on %s: %s", message["channel"], exc)
                continue
            self._deliver(decoded)
