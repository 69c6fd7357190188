"""Helpers of the gRPC streaming tests: server streams read in the background, the REST
app on the same hub, and a subscriber that never reads."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from typing import Generic, Protocol, TypeVar

import grpc
import httpx
import orjson

from telehub.api.app import create_app
from telehub.hub import Hub
from telehub.v1 import live_pb2, live_pb2_grpc, telemetry_pb2
from tests.conftest import require_service
from tests.grpc.conftest import GrpcHub
from tests.live.support import gauge, wait_for
from tests.mqtt.support import telemetry_topic

T = TypeVar("T")
WAIT = 10.0
_END = object()

# A client that keeps HTTP/2 flow control from buffering much on its behalf: no BDP
# probing (which grows the receive window to megabytes on loopback) and 1 KiB of
# read-ahead per stream, so the server's writes stall after about one unread message.
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]


class Received(Generic[T]):
    """What a server stream has sent so far, read by a background task."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self.ended = False

    async def pump(self, stream: AsyncIterator[T]) -> None:
        async for message in stream:
            self._queue.put_nowait(message)
        self.ended = True
        self._queue.put_nowait(_END)

    async def next(self, wait: float = WAIT) -> T:
        """The next message; fails if the stream ends or nothing comes in time."""
        async with asyncio.timeout(wait):
            message = await self._queue.get()
        assert message is not _END, "the stream ended"
        return message  # type: ignore[return-value]

    async def rest(self, wait: float = WAIT) -> list[T]:
        """Every message until the stream ends (it must end within ``wait``)."""
        out: list[T] = []
        async with asyncio.timeout(wait):
            while (message := await self._queue.get()) is not _END:
                out.append(message)  # type: ignore[arg-type]
        return out


@contextlib.asynccontextmanager
async def reading(hub: Hub, stream: AsyncIterator[T]) -> AsyncIterator[Received[T]]:
    """Read ``stream`` in the background; enter once the server has joined the bus
    (from then on nothing published is missed), cancel the call on exit."""
    received: Received[T] = Received()
    before = gauge(hub.metrics.bus_subscribers)
    async with asyncio.TaskGroup() as tasks:
        reader = tasks.create_task(received.pump(stream), name="grpc-stream-reader")
        await wait_for(lambda: reader.done() or gauge(hub.metrics.bus_subscribers) > before)
        try:
            yield received
        finally:
            reader.cancel()


class Stalled:
    """A subscriber that has read nothing since it subscribed, until ``next`` is called."""

    def __init__(
        self, call: grpc.aio.UnaryStreamCall[live_pb2.SubscribeRequest, live_pb2.LiveEvent]
    ) -> None:
        self.call = call

    async def next(self, wait: float = WAIT) -> live_pb2.LiveEvent:
        async with asyncio.timeout(wait):
            message = await self.call.read()
        assert message is not grpc.aio.EOF, "the stream ended"
        return message  # type: ignore[return-value]


@contextlib.asynccontextmanager
async def stalled_subscriber(grpc_hub: GrpcHub) -> AsyncIterator[Stalled]:
    """A Subscribe call (every reading) on a SMALL_WINDOW channel, subscribed on the bus."""
    hub = grpc_hub.hub
    async with grpc.aio.insecure_channel(grpc_hub.target, options=SMALL_WINDOW) as channel:
        before = gauge(hub.metrics.bus_subscribers)
        call = live_pb2_grpc.LiveServiceStub(channel).Subscribe(
            live_pb2.SubscribeRequest(),
            metadata=(("authorization", f"Bearer {grpc_hub.admin}"),),
        )
        try:
            await wait_for(lambda: gauge(hub.metrics.bus_subscribers) > before)
            yield Stalled(call)
        finally:
            call.cancel()


@contextlib.asynccontextmanager
async def rest_api(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """The real HTTP app on ``hub`` (lifespan running), over httpx's ASGI transport."""
    app = create_app(hub.settings, hub=hub)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://telehub") as client:
            yield client


async def mqtt_publish(port: int, device_id: str, token: str, body: object) -> None:
    """Publish telemetry at QoS 1 as the device would: with the C client, logged in as it."""
    if shutil.which("mosquitto_pub") is None:
        require_service("Mosquitto", "the mosquitto_pub client is not installed")
    process = await asyncio.create_subprocess_exec(
        *("mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv311", "-q", "1"),
        *("-i", device_id, "-u", device_id, "-P", token, "-t", telemetry_topic(device_id), "-s"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(orjson.dumps(body)), WAIT)
    assert process.returncode == 0, output.decode()


def readings_batch(
    device_id: str, values: list[float], *, first_ms: int, metric: str = "t"
) -> telemetry_pb2.ReadingBatch:
    """One reading per value, a millisecond apart from ``first_ms``."""
    batch = telemetry_pb2.ReadingBatch(device_id=device_id)
    for i, value in enumerate(values):
        reading = batch.readings.add(metric=metric, value=value)
        reading.ts.FromMilliseconds(first_ms + i)
    return batch


def rows(batch: telemetry_pb2.ReadingBatch) -> list[tuple[str, str, float, int]]:
    """(device_id, metric, value, ts in ms) of each reading, as sent or received."""
    return [(batch.device_id, r.metric, r.value, r.ts.ToMilliseconds()) for r in batch.readings]


def kind(event: live_pb2.LiveEvent) -> str | None:
    return event.WhichOneof("event")


class Source(Protocol):
    async def next(self, wait: float = WAIT) -> live_pb2.LiveEvent: ...


async def first_of(
    received: Source,
    want: Callable[[live_pb2.LiveEvent], bool],
    wait: float = WAIT,
) -> tuple[live_pb2.LiveEvent, list[live_pb2.LiveEvent]]:
    """The first event ``want`` accepts, and those before it."""
    before: list[live_pb2.LiveEvent] = []
    async with asyncio.timeout(wait):
        while not want(event := await received.next(wait)):
            before.append(event)
    return event, before
