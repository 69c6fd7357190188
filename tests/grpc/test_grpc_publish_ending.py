"""Every status that ends a Publish stream early says what the stream committed.

The summary rides in the status details (google.rpc.Status, in the trailers):
a gateway resends from ``summary.batches``. It must arrive whatever ended the
stream, and fit in the trailers a client accepts (grpc's default: 8 KiB) even
after many rejected batches with many field violations each.
"""

from __future__ import annotations

import asyncio
import math

import grpc
import pytest

from telehub.client.grpc_calls import GrpcError
from telehub.client.grpc_client import AsyncGrpcClient
from telehub.grpc.ingest import ENDING_SUMMARY_BYTES
from telehub.v1 import telemetry_pb2
from tests.grpc.conftest import GrpcHub, refused
from tests.grpc.ingest_support import readings_batch, stored_count


def all_nan(device_id: str, count: int, *, start: int) -> telemetry_pb2.ReadingBatch:
    """A batch refused with a field violation for each of its ``count`` readings."""
    batch = readings_batch(device_id, count, start=start)
    for reading in batch.readings:
        reading.value = math.nan
    return batch


def stream_then_another_device(rejected: int) -> list[telemetry_pb2.ReadingBatch]:
    """dev-1: one good batch, ``rejected`` bad ones of 100 bad fields each, one more
    good one; then a batch of dev-2, which a dev-1 token may not write; then more."""
    return [
        readings_batch("dev-1", 100),
        *(all_nan("dev-1", 100, start=1_000 + i * 100) for i in range(rejected)),
        readings_batch("dev-1", 100, start=100),
        readings_batch("dev-2", 10),
        readings_batch("dev-1", 100, start=200),
    ]


async def test_a_stream_ended_by_another_devices_batch_carries_what_it_committed(
    grpc_hub: GrpcHub,
) -> None:
    token = await grpc_hub.device("dev-1")
    await grpc_hub.device("dev-2")

    async with grpc_hub.client(token) as client:
        error = await refused(
            client.publish(stream_then_another_device(rejected=40)),
            grpc.StatusCode.PERMISSION_DENIED,
        )

    assert error.reason == "forbidden"
    summary = error.summary
    assert summary is not None
    assert (summary.batches, summary.accepted) == (42, 200)
    assert (summary.rejected_batches, summary.rejected) == (40, 4_000)
    assert await stored_count(grpc_hub.hub) == summary.accepted
    assert await stored_count(grpc_hub.hub, "dev-2") == 0
    # The first rejections, as many as fit, each with its first field violations.
    assert 1 <= len(summary.rejections) < 40
    assert [r.index for r in summary.rejections] == list(range(1, len(summary.rejections) + 1))
    assert [v.field for v in summary.rejections[0].field_violations] == [
        "readings[0].value",
        "readings[1].value",
        "readings[2].value",
    ]
    assert summary.ByteSize() <= ENDING_SUMMARY_BYTES
    assert "resend from batch 42" in str(error)


async def test_the_sync_client_gets_the_summary_too(grpc_hub: GrpcHub) -> None:
    token = await grpc_hub.device("dev-1")
    await grpc_hub.device("dev-2")

    def publish() -> GrpcError:
        with grpc_hub.sync_client(token) as client:
            try:
                client.publish(stream_then_another_device(rejected=40))
            except GrpcError as exc:
                return exc
        raise AssertionError("dev-2's batch was accepted")

    error = await asyncio.to_thread(publish)

    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert error.summary is not None
    assert (error.summary.batches, error.summary.accepted) == (42, 200)


@pytest.mark.parametrize("token", ["th_dev_not-a-token", None], ids=["unknown", "none"])
async def test_a_stream_refused_its_token_carries_an_empty_summary(
    grpc_hub: GrpcHub, token: str | None
) -> None:
    await grpc_hub.device("dev-1")

    async with AsyncGrpcClient(grpc_hub.target, token=token) as client:
        error = await refused(
            client.publish([readings_batch("dev-1", 10)]), grpc.StatusCode.UNAUTHENTICATED
        )

    assert error.summary is not None
    assert error.summary.batches == 0
    assert await stored_count(grpc_hub.hub) == 0


@pytest.mark.allow_error_logs
async def test_a_stream_ended_by_a_bug_is_internal_with_what_it_committed(
    grpc_hub: GrpcHub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = await grpc_hub.device("dev-1")

    async def broken(**_: object) -> None:
        raise RuntimeError("a bug in the rejected log")

    monkeypatch.setattr(grpc_hub.hub.rejected, "record", broken)
    batches = [readings_batch("dev-1", 100, start=i * 100) for i in range(3)]
    batches.append(all_nan("dev-1", 1, start=1_000))  # recording its rejection fails

    async with grpc_hub.client(token) as client:
        error = await refused(client.publish(batches), grpc.StatusCode.INTERNAL)

    assert error.reason == "internal"
    assert "a bug" not in error.detail  # the client learns nothing of the hub's insides
    assert error.summary is not None
    assert (error.summary.batches, error.summary.accepted) == (3, 300)
    assert await stored_count(grpc_hub.hub) == 300
    [logged] = [r for r in caplog.records if r.exc_info]
    assert "Publish" in logged.getMessage()
