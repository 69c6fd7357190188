"""IngestService over a real server: what a summary counts is committed, once.

Bad input is INVALID_ARGUMENT with a field violation per offending field (and
is recorded as rejected); in a stream a bad batch is counted and the stream
goes on; push-back is RESOURCE_EXHAUSTED with a retry delay, and a stream
that ends early carries the summary of what it committed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import grpc
import pytest

from telehub.client import grpc_calls as calls
from telehub.domain.devices import Scope
from telehub.v1 import telemetry_pb2, telemetry_pb2_grpc
from tests.grpc.conftest import GrpcHub, at, grpc_hub_with, refused
from tests.grpc.ingest_support import held_writer, readings_batch, stored_count
from tests.live.support import gauge, wait_for

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def test_a_batch_is_stored_once_and_its_resend_counted_as_duplicates(
    grpc_hub: GrpcHub,
) -> None:
    token = await grpc_hub.device()
    batch = calls.batch(
        "dev-1", {"temperature": 21.5, "humidity": 40, "firmware": "1.4.2"}, ts=at(0)
    )
    async with grpc_hub.client(token) as client:
        first = await client.publish_batch(batch)
        again = await client.publish_batch(batch)

    assert (first.batches, first.accepted, first.duplicates, first.state) == (1, 2, 0, 1)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 2, 0)
    assert await grpc_hub.stored("temperature") == [(0.0, 21.5)]
    latest = await grpc_hub.hub.telemetry.latest("dev-1")
    assert latest.state["firmware"][1] == "1.4.2"


async def test_readings_without_a_timestamp_are_stamped_when_received(grpc_hub: GrpcHub) -> None:
    token = await grpc_hub.device()
    before = datetime.now(UTC)
    async with grpc_hub.client(token) as client:
        await client.send_telemetry("dev-1", {"temperature": 3.0})
    async with grpc_hub.client() as admin:
        latest = await admin.latest("dev-1")

    [reading] = latest.readings
    assert before - timedelta(seconds=1) <= reading.ts.ToDatetime(UTC) <= datetime.now(UTC)


def _reading(
    metric: str = "temperature", value: float = 1.0, ts: datetime | None = None
) -> telemetry_pb2.Reading:
    reading = telemetry_pb2.Reading(metric=metric, value=value)
    reading.ts.FromDatetime(ts or at(0))
    return reading


@pytest.mark.parametrize(
    ("make_reading", "field", "description"),
    [
        (partial(_reading, value=math.nan), "readings[1].value", "must be a finite number"),
        (partial(_reading, value=-math.inf), "readings[1].value", "must be a finite number"),
        (partial(_reading, metric="bad metric"), "readings[1].metric", "must match"),
        (
            # Made when the test runs: ten minutes from collection time may be past by then.
            lambda: _reading(ts=datetime.now(UTC) + timedelta(minutes=10)),
            "readings[1].ts",
            "more than 300 s in the future",
        ),
    ],
    ids=["nan", "infinity", "metric-name", "future-ts"],
)
async def test_bad_readings_are_refused_with_the_offending_field_and_nothing_is_stored(
    grpc_hub: GrpcHub,
    make_reading: Callable[[], telemetry_pb2.Reading],
    field: str,
    description: str,
) -> None:
    token = await grpc_hub.device()
    batch = telemetry_pb2.ReadingBatch(device_id="dev-1", readings=[_reading(), make_reading()])
    async with grpc_hub.client(token) as client:
        error = await refused(client.publish_batch(batch), INVALID)

    assert error.reason == "invalid-input"
    [(where, why)] = error.field_violations
    assert where == field
    assert description in why
    assert await stored_count(grpc_hub.hub) == 0  # the good reading of the batch neither
    [rejected] = await grpc_hub.hub.rejected.recent(limit=10, before_id=None, device_id="dev-1")
    assert (rejected.transport, rejected.reason) == ("grpc", "invalid-input")
    assert field.split("[")[0] in rejected.detail
    assert '"dev-1"' in rejected.excerpt


async def test_every_bad_field_of_a_batch_is_named(grpc_hub: GrpcHub) -> None:
    token = await grpc_hub.device()
    batch = telemetry_pb2.ReadingBatch(device_id="dev-1", readings=[_reading(value=math.nan)])
    state = batch.state.add(key="bad key")
    state.value.list_value.values.add().number_value = math.nan
    async with grpc_hub.client(token) as client:
        error = await refused(client.publish_batch(batch), INVALID)

    assert [f for f, _ in error.field_violations] == [
        "readings[0].value",
        "state[0].key",
        "state[0].value",
    ]


async def test_an_empty_or_oversize_batch_is_refused(
    make_settings: object,
) -> None:
    async with grpc_hub_with(
        make_settings, max_batch_readings=100, ingest_queue_readings=10_000
    ) as env:  # type: ignore[arg-type]
        token = await env.device()
        async with env.client(token) as client:
            empty = await refused(
                client.publish_batch(telemetry_pb2.ReadingBatch(device_id="dev-1")), INVALID
            )
            big = await refused(client.publish_batch(readings_batch("dev-1", 101)), INVALID)
            assert (await client.publish_batch(readings_batch("dev-1", 100))).accepted == 100

    assert empty.field_violations == [("readings", "at least one reading or state value")]
    assert big.reason == "payload-too-large"


async def test_who_may_write_which_device(grpc_hub: GrpcHub) -> None:
    own = await grpc_hub.device("dev-1")
    await grpc_hub.device("dev-2")
    reader = await grpc_hub.token(Scope.READ)
    writer = await grpc_hub.token(Scope.WRITE)
    batch = readings_batch("dev-2", 3)

    async with grpc_hub.client(own) as device:
        await refused(device.publish_batch(batch), grpc.StatusCode.PERMISSION_DENIED)
    async with grpc_hub.client(reader) as read_only:
        await refused(read_only.publish_batch(batch), grpc.StatusCode.PERMISSION_DENIED)
    async with grpc_hub.client("tha_not-a-real-token") as stranger:
        await refused(stranger.publish_batch(batch), grpc.StatusCode.UNAUTHENTICATED)
    async with grpc_hub.client(writer) as service:
        missing = await refused(
            service.publish_batch(readings_batch("ghost", 1)), grpc.StatusCode.NOT_FOUND
        )
        assert missing.reason == "not-found"
        assert (await service.publish_batch(batch)).accepted == 3

    assert await stored_count(grpc_hub.hub, "dev-2") == 3


# --- client streaming ---------------------------------------------------------------


async def test_a_stream_counts_every_batch_and_a_bad_one_does_not_stop_it(
    grpc_hub: GrpcHub,
) -> None:
    await grpc_hub.device("dev-1")
    writer = await grpc_hub.token(Scope.WRITE)
    batches = [readings_batch("dev-1", 100, start=i * 100) for i in range(30)]
    batches[7].readings[5].value = math.nan
    batches[12] = readings_batch("ghost", 100)

    async with grpc_hub.client(writer) as client:
        summary = await client.publish(batches)

    assert (summary.batches, summary.accepted, summary.duplicates) == (30, 2_800, 0)
    assert (summary.rejected_batches, summary.rejected) == (2, 200)
    assert [(r.index, r.device_id, r.reason) for r in summary.rejections] == [
        (7, "dev-1", "invalid-input"),
        (12, "ghost", "unknown-device"),
    ]
    assert [(v.field, v.description) for v in summary.rejections[0].field_violations] == [
        ("readings[5].value", "must be a finite number")
    ]
    assert await stored_count(grpc_hub.hub) == 2_800


async def test_a_stream_resent_adds_nothing_and_says_so(grpc_hub: GrpcHub) -> None:
    token = await grpc_hub.device()
    batches = [readings_batch("dev-1", 50, start=i * 50) for i in range(10)]
    async with grpc_hub.client(token) as client:
        first = await client.publish(batches)
        again = await client.publish(batches)

    assert (first.accepted, first.duplicates) == (500, 0)
    assert (again.batches, again.accepted, again.duplicates) == (10, 0, 500)
    assert await stored_count(grpc_hub.hub) == 500


async def test_a_device_writing_for_another_mid_stream_ends_it_after_what_came_before(
    grpc_hub: GrpcHub,
) -> None:
    token = await grpc_hub.device("dev-1")
    await grpc_hub.device("dev-2")
    batches = [readings_batch("dev-1", 100, start=i * 100) for i in range(5)]
    batches += [readings_batch("dev-2", 100), readings_batch("dev-1", 100, start=500)]

    async with grpc_hub.client(token) as client:
        error = await refused(client.publish(batches), grpc.StatusCode.PERMISSION_DENIED)

    assert error.summary is not None
    assert (error.summary.batches, error.summary.accepted) == (5, 500)
    assert await stored_count(grpc_hub.hub) == 500
    assert await stored_count(grpc_hub.hub, "dev-2") == 0


async def test_a_stream_cancelled_half_way_stores_whole_batches_once(grpc_hub: GrpcHub) -> None:
    """What the server took before the cancel is committed whole; a full resend fills the rest."""
    token = await grpc_hub.device()
    batches = [readings_batch("dev-1", 100, start=i * 100) for i in range(40)]
    received = grpc_hub.hub.metrics.grpc_stream_messages.labels(
        "/telehub.v1.IngestService/Publish", "received"
    )
    halfway = asyncio.Event()

    async def first_half() -> AsyncIterator[telemetry_pb2.ReadingBatch]:
        for batch in batches[:20]:
            yield batch
        halfway.set()
        await asyncio.Event().wait()  # the client never finishes: it is cancelled

    async with grpc.aio.insecure_channel(grpc_hub.target) as channel:
        stub = telemetry_pb2_grpc.IngestServiceStub(channel)
        call = stub.Publish(first_half(), metadata=calls.metadata(token))  # type: ignore[arg-type]
        await halfway.wait()
        await wait_for(lambda: gauge(received) >= 20)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    await wait_for(lambda: grpc_hub.hub.ingestor.queued == 0)

    kept = await stored_count(grpc_hub.hub)
    assert kept % 100 == 0  # whole batches only
    assert 1_900 <= kept <= 2_000  # what the server took (the last perhaps not yet offered)
    async with grpc_hub.client(token) as client:
        resent = await client.publish(batches)
    assert (resent.accepted, resent.duplicates) == (4_000 - kept, kept)
    assert await stored_count(grpc_hub.hub) == 4_000


# --- push-back ----------------------------------------------------------------------


def _small_queue(make_settings: object) -> object:
    return grpc_hub_with(
        make_settings,  # type: ignore[arg-type]
        ingest_queue_readings=10_000,
        max_batch_readings=10_000,
        ingest_retry_after=2.0,
    )


async def test_a_full_queue_is_resource_exhausted_with_retry_info_and_loses_nothing(
    make_settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _small_queue(make_settings) as env:  # type: ignore[attr-defined]
        token = await env.device()
        async with env.client(token) as client, held_writer(env.hub, monkeypatch) as held:
            filling = asyncio.create_task(client.publish_batch(readings_batch("dev-1", 10_000)))
            await asyncio.wait_for(held.writing.wait(), 10)

            error = await refused(
                client.publish_batch(readings_batch("dev-1", 1, start=20_000)),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            )

            assert error.reason == "overloaded"
            assert error.retry_after == 2.0
            held.release.set()
            assert (await filling).accepted == 10_000
            retried = await client.publish_batch(readings_batch("dev-1", 1, start=20_000))
            assert retried.accepted == 1
        assert await stored_count(env.hub) == 10_001


async def test_a_stream_pushed_back_ends_with_the_summary_of_what_it_committed(
    make_settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _small_queue(make_settings) as env:  # type: ignore[attr-defined]
        token = await env.device()
        batches = [readings_batch("dev-1", 5_000, start=i * 5_000) for i in range(4)]
        async with env.client(token) as client, held_writer(env.hub, monkeypatch) as held:
            streaming = asyncio.create_task(client.publish(batches))
            await asyncio.wait_for(held.writing.wait(), 10)
            await wait_for(lambda: gauge(env.hub.metrics.backpressure) >= 1)
            held.release.set()

            error = await refused(streaming, grpc.StatusCode.RESOURCE_EXHAUSTED)

            assert error.retry_after == 2.0
            assert error.summary is not None
            assert (error.summary.batches, error.summary.accepted) == (2, 10_000)
            rest = await client.publish(batches[error.summary.batches :])
            assert rest.accepted == 10_000
        assert await stored_count(env.hub) == 20_000


async def test_the_sync_client_gets_the_same_answers(grpc_hub: GrpcHub) -> None:
    token = await grpc_hub.device()
    batch = readings_batch("dev-1", 10)
    bad = telemetry_pb2.ReadingBatch(device_id="dev-1", readings=[_reading(value=math.nan)])

    def sync_calls() -> tuple[telemetry_pb2.PublishSummary, telemetry_pb2.PublishSummary, object]:
        with grpc_hub.sync_client(token) as client:
            one = client.publish_batch(batch)
            streamed = client.publish([readings_batch("dev-1", 10, start=10)])
            try:
                client.publish_batch(bad)
            except calls.GrpcError as exc:
                return one, streamed, (exc.code, exc.reason, exc.field_violations)
        raise AssertionError("the NaN batch was accepted")

    one, streamed, error = await asyncio.to_thread(sync_calls)

    assert (one.accepted, streamed.accepted) == (10, 10)
    assert error == (INVALID, "invalid-input", [("readings[0].value", "must be a finite number")])
