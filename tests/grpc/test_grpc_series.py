"""The compact Series form of a batch: stored like readings, checked by whole arrays,
and every offending element named."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from telehub.client import grpc_calls as calls
from telehub.v1 import telemetry_pb2
from tests.grpc.conftest import GrpcHub, at, grpc_hub_with, refused
from tests.grpc.ingest_support import readings_batch, stored_count

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _reading(metric: str, value: float) -> telemetry_pb2.Reading:
    reading = telemetry_pb2.Reading(metric=metric, value=value)
    reading.ts.FromDatetime(at(0))
    return reading


async def test_series_are_stored_like_readings_and_may_share_a_batch_with_them(
    grpc_hub: GrpcHub,
) -> None:
    token = await grpc_hub.device()
    stamps = [at(s) for s in range(5)]
    batch = calls.series_batch(
        "dev-1",
        {"temperature": [20.0, 20.5, 21.0, 21.5, 22.0], "humidity": [40, 41, 42, 43, 44]},
        timestamps=stamps,
    )
    batch.readings.append(_reading("pressure", 1013.0))
    async with grpc_hub.client(token) as client:
        first = await client.publish([batch])
        again = await client.publish_batch(batch)

    assert (first.accepted, again.duplicates) == (11, 11)
    assert await grpc_hub.stored("temperature") == [
        (0.0, 20.0),
        (1.0, 20.5),
        (2.0, 21.0),
        (3.0, 21.5),
        (4.0, 22.0),
    ]
    assert await grpc_hub.stored("pressure") == [(0.0, 1013.0)]


async def test_a_series_without_timestamps_is_stamped_when_received(grpc_hub: GrpcHub) -> None:
    token = await grpc_hub.device()
    before = datetime.now(UTC)
    async with grpc_hub.client(token) as client:
        summary = await client.publish_batch(calls.series_batch("dev-1", {"temperature": [1.0]}))
    async with grpc_hub.client() as admin:
        [reading] = (await admin.latest("dev-1")).readings

    assert summary.accepted == 1
    assert before - timedelta(seconds=1) <= reading.ts.ToDatetime(UTC) <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("series", "fields"),
    [
        (
            telemetry_pb2.Series(metric="t", values=[1.0, math.nan, 2.0, math.inf]),
            ["series[0].values[1]", "series[0].values[3]"],
        ),
        (telemetry_pb2.Series(metric="bad metric", values=[1.0]), ["series[0].metric"]),
        (telemetry_pb2.Series(metric="t", values=[]), ["series[0].values"]),
        (
            telemetry_pb2.Series(metric="t", values=[1.0, 2.0], timestamps_us=[0]),
            ["series[0].timestamps_us"],
        ),
        (
            telemetry_pb2.Series(
                metric="t",
                values=[1.0, 2.0, 3.0],
                timestamps_us=[1_767_225_600_000_000, 2**62, -1],
            ),
            ["series[0].timestamps_us[1]", "series[0].timestamps_us[2]"],
        ),
    ],
    ids=["not-finite", "metric-name", "empty", "timestamp-count", "timestamp-range"],
)
async def test_a_bad_series_names_each_offending_element(
    grpc_hub: GrpcHub, series: telemetry_pb2.Series, fields: list[str]
) -> None:
    token = await grpc_hub.device()
    batch = telemetry_pb2.ReadingBatch(device_id="dev-1", series=[series])
    async with grpc_hub.client(token) as client:
        error = await refused(client.publish_batch(batch), INVALID)
        summary = await client.publish([batch, readings_batch("dev-1", 3)])

    assert [f for f, _ in error.field_violations] == fields
    assert [v.field for v in summary.rejections[0].field_violations] == fields
    assert summary.accepted == 3
    assert await stored_count(grpc_hub.hub, metric="t") == 0


async def test_series_count_towards_the_batch_limit(make_settings: object) -> None:
    async with grpc_hub_with(
        make_settings,  # type: ignore[arg-type]
        max_batch_readings=100,
        ingest_queue_readings=10_000,
    ) as env:
        token = await env.device()
        batch = calls.series_batch("dev-1", {"a": [1.0] * 60, "b": [2.0] * 41})
        async with env.client(token) as client:
            error = await refused(client.publish_batch(batch), INVALID)

    assert error.reason == "payload-too-large"


async def test_the_latest_value_of_a_series_is_its_newest_not_its_last(grpc_hub: GrpcHub) -> None:
    token = await grpc_hub.device()
    batch = calls.series_batch(
        "dev-1", {"temperature": [5.0, 9.0, 7.0]}, timestamps=[at(2), at(3), at(1)]
    )
    batch.readings.append(_reading("temperature", 8.0))  # at(0): older still
    async with grpc_hub.client(token) as client:
        await client.publish_batch(batch)
        await client.publish_batch(
            calls.series_batch("dev-1", {"temperature": [1.0]}, timestamps=[at(-5)])
        )
    async with grpc_hub.client() as admin:
        [latest] = (await admin.latest("dev-1")).readings

    assert (latest.value, latest.ts.ToDatetime(UTC)) == (9.0, at(3))


async def test_timestamps_before_2000_are_refused_saying_what_they_look_like(
    grpc_hub: GrpcHub,
) -> None:
    # Epoch seconds or milliseconds where microseconds go would be January 1970.
    now_s = int(datetime.now(UTC).timestamp())
    series = telemetry_pb2.Series(
        metric="t", values=[1.0, 2.0], timestamps_us=[now_s, now_s * 1000]
    )
    early = telemetry_pb2.Reading(metric="u", value=1.0)
    early.ts.FromDatetime(datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC))
    batch = telemetry_pb2.ReadingBatch(device_id="dev-1", series=[series], readings=[early])
    token = await grpc_hub.device()
    async with grpc_hub.client(token) as client:
        error = await refused(client.publish_batch(batch), INVALID)

    assert error.field_violations == [
        ("readings[0].ts", "before 2000-01-01"),
        ("series[0].timestamps_us[0]", "before 2000-01-01: looks like seconds; send microseconds"),
        (
            "series[0].timestamps_us[1]",
            "before 2000-01-01: looks like milliseconds; send microseconds",
        ),
    ]
    assert await stored_count(grpc_hub.hub, metric="t") == 0
