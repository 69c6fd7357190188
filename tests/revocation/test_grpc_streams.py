"""gRPC streams of a revoked credential end UNAUTHENTICATED: live subscriptions and
command watches of a deleted API token, and a device's Publish stream when its token
is rotated or it is deleted (with the summary of what the stream committed, as every
early end carries). Other credentials' streams go on; a rotated device's new token
streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from telehub.client.grpc_calls import GrpcError
from telehub.domain.devices import Scope
from telehub.v1 import telemetry_pb2
from tests.grpc.conftest import GrpcHub, refused
from tests.grpc.ingest_support import readings_batch, stored_count
from tests.mqtt.support import eventually
from tests.revocation.support import WITHIN, feed, streaming

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # the database plays no part


async def test_deleting_a_token_ends_its_subscriptions_and_watches(grpc_hub: GrpcHub) -> None:
    hub = grpc_hub.hub
    await grpc_hub.device("dev-1")
    token, secret = await hub.tokens.create(name="soon-gone", scope=Scope.READ)
    other = await grpc_hub.token(Scope.READ)
    async with (
        grpc_hub.client(secret) as doomed,
        grpc_hub.client(other) as kept,
        streaming(hub, doomed.subscribe()) as live,
        streaming(hub, doomed.watch_command("dev-1")) as watch,
        streaming(hub, kept.subscribe()) as bystander,
    ):
        await hub.tokens.delete(token.id)

        for stream in (live, watch):
            error = await stream.failure()
            assert error.code == grpc.StatusCode.UNAUTHENTICATED, error
            assert "revoked" in str(error)
        device = await grpc_hub.device("dev-2")
        async with grpc_hub.client(device) as sender:
            await sender.publish_batch(readings_batch("dev-2", 3))
        event = await bystander.next()
        assert event.readings.device_id == "dev-2"
        with pytest.raises(GrpcError) as caught:
            await anext(aiter(doomed.subscribe()))
        assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("revocation", ["rotated", "deleted"])
async def test_a_devices_publish_stream_ends_with_its_summary_when_its_token_goes(
    grpc_hub: GrpcHub, revocation: str
) -> None:
    hub = grpc_hub.hub
    token = await grpc_hub.device("dev-1")
    other = await grpc_hub.device("dev-2")
    doomed_batches: asyncio.Queue[telemetry_pb2.ReadingBatch | None] = asyncio.Queue()
    other_batches: asyncio.Queue[telemetry_pb2.ReadingBatch | None] = asyncio.Queue()
    async with grpc_hub.client(token) as device, grpc_hub.client(other) as bystander:
        doomed = asyncio.create_task(device.publish(feed(doomed_batches)))
        kept = asyncio.create_task(bystander.publish(feed(other_batches)))
        try:
            doomed_batches.put_nowait(readings_batch("dev-1", 10))
            other_batches.put_nowait(readings_batch("dev-2", 10))

            async def both_committed() -> bool:
                return await stored_count(hub, "dev-1") == 10 == await stored_count(hub, "dev-2")

            # Committed and counted: each stream now waits for its client's next batch.
            await eventually(both_committed, what="the first batches stored")

            if revocation == "rotated":
                new_token = await hub.devices.rotate_token("dev-1")
            else:
                await hub.devices.delete("dev-1")

            error = await ended(doomed)
            assert error.code == grpc.StatusCode.UNAUTHENTICATED, error
            assert error.summary is not None
            assert (error.summary.batches, error.summary.accepted) == (1, 10)

            other_batches.put_nowait(readings_batch("dev-2", 10, start=10))
            other_batches.put_nowait(None)
            summary = await asyncio.wait_for(kept, WITHIN)
            assert (summary.batches, summary.accepted) == (2, 20)
        finally:
            for task in (doomed, kept):
                task.cancel()
            await asyncio.gather(doomed, kept, return_exceptions=True)

        await refused(device.publish([readings_batch("dev-1", 1)]), grpc.StatusCode.UNAUTHENTICATED)
    if revocation == "rotated":
        async with grpc_hub.client(new_token) as renewed:
            summary = await renewed.publish(stream_of(readings_batch("dev-1", 5, start=100)))
        assert summary.accepted == 5
        assert await stored_count(hub, "dev-1") == 15


async def ended(task: asyncio.Task[telemetry_pb2.PublishSummary]) -> GrpcError:
    try:
        async with asyncio.timeout(WITHIN):
            await task
    except GrpcError as exc:
        return exc
    except TimeoutError:
        pytest.fail(f"the Publish stream was still open {WITHIN} s after its token was revoked")
    raise AssertionError("the Publish stream ended OK")


async def stream_of(
    *batches: telemetry_pb2.ReadingBatch,
) -> AsyncIterator[telemetry_pb2.ReadingBatch]:
    for batch in batches:
        yield batch
