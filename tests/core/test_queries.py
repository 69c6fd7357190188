"""Range queries: raw points, aggregated buckets, and the limits on both."""

from __future__ import annotations

import pytest

from telehub.core.ports import Aggregate, Point
from telehub.core.telemetry import MAX_POINTS, parse_interval
from telehub.errors import InvalidInput, NotFound
from telehub.hub import Hub
from tests.core.service_support import BASE_US, MINUTE_US, device_with_data, query

# --- queries ---------------------------------------------------------------------------


async def test_raw_points_in_range_with_limit_and_order(hub: Hub) -> None:
    device = await device_with_data(hub, {0: 0.0, 10: 1.0, 20: 2.0, 30: 3.0, 40: 4.0})
    # from is inclusive, to is exclusive.
    result = await hub.telemetry.query(device, query(start_s=10, end_s=40))
    assert [p.value for p in result["temp"]] == [1.0, 2.0, 3.0]
    assert result["temp"][0] == Point(BASE_US + 10_000_000, 1.0)
    first = await hub.telemetry.query(device, query(limit=2))
    assert [p.value for p in first["temp"]] == [0.0, 1.0]
    last = await hub.telemetry.query(device, query(limit=2, desc=True))
    assert [p.value for p in last["temp"]] == [4.0, 3.0]


async def test_query_errors_for_unknown_device_and_bad_interval(hub: Hub) -> None:
    with pytest.raises(NotFound):
        await hub.telemetry.query("ghost", query())
    device = await device_with_data(hub, {0: 1.0})
    with pytest.raises(InvalidInput):
        await hub.telemetry.query(device, query(interval="1.5m"))


# Seconds after BASE_US. The queries start at 1 s, which leaves out the 100 at 0 s:
# minute 0 then holds 1, 2, 3; minute 1 holds 10; minute 3 holds 99.
BUCKET_DATA = {0: 100.0, 5: 1.0, 20: 2.0, 50: 3.0, 70: 10.0, 200: 99.0}


@pytest.mark.parametrize(
    ("agg", "minute0", "minute1"),
    [
        (Aggregate.AVG, 2.0, 10.0),
        (Aggregate.MIN, 1.0, 10.0),
        (Aggregate.MAX, 3.0, 10.0),
        (Aggregate.SUM, 6.0, 10.0),
        (Aggregate.COUNT, 3.0, 1.0),
    ],
)
async def test_buckets_aggregate_exactly(
    hub: Hub, agg: Aggregate, minute0: float, minute1: float
) -> None:
    device = await device_with_data(hub, BUCKET_DATA)
    q = query(start_s=1, end_s=120, interval="1m", agg=agg)
    points = (await hub.telemetry.query(device, q))["temp"]
    # Buckets start at multiples of the width since the epoch, not at "from".
    assert points == [Point(BASE_US, minute0), Point(BASE_US + MINUTE_US, minute1)]


async def test_buckets_newest_first(hub: Hub) -> None:
    device = await device_with_data(hub, BUCKET_DATA)
    q = query(start_s=1, end_s=240, interval="1m", agg=Aggregate.MAX, desc=True)
    points = (await hub.telemetry.query(device, q))["temp"]
    assert [p.ts_us for p in points] == [BASE_US + 3 * MINUTE_US, BASE_US + MINUTE_US, BASE_US]
    assert [p.value for p in points] == [99.0, 10.0, 3.0]


async def test_bucket_bounds_do_not_depend_on_the_range(hub: Hub) -> None:
    device = await device_with_data(hub, BUCKET_DATA)
    two_minutes = 2 * MINUTE_US
    first = (BASE_US // two_minutes) * two_minutes
    assert first != BASE_US  # so the range below does not start on a bucket bound
    wide = await hub.telemetry.query(
        device, query(start_s=0, end_s=600, interval="2m", agg=Aggregate.MAX)
    )
    assert [(p.ts_us - first) // MINUTE_US for p in wide["temp"]] == [0, 2, 4]
    assert [p.value for p in wide["temp"]] == [100.0, 10.0, 99.0]
    narrow = await hub.telemetry.query(
        device, query(start_s=70, end_s=600, interval="2m", agg=Aggregate.MAX)
    )
    assert narrow["temp"] == wide["temp"][1:]


async def test_buckets_newest_first_with_limit_are_the_newest(hub: Hub) -> None:
    device = await device_with_data(hub, BUCKET_DATA)
    q = query(start_s=1, end_s=240, interval="1m", agg=Aggregate.MAX, limit=2, desc=True)
    points = (await hub.telemetry.query(device, q))["temp"]
    assert [p.value for p in points] == [99.0, 10.0]


@pytest.mark.parametrize("end_s", [10, 5])
async def test_from_not_before_to_is_rejected(hub: Hub, end_s: int) -> None:
    device = await device_with_data(hub, {0: 1.0})
    with pytest.raises(InvalidInput) as caught:
        await hub.telemetry.query(device, query(start_s=10, end_s=end_s))
    assert [e.parameter for e in caught.value.errors] == ["from"]


async def test_too_many_buckets_is_rejected(hub: Hub) -> None:
    device = await device_with_data(hub, {0: 1.0})
    with pytest.raises(InvalidInput) as caught:
        await hub.telemetry.query(device, query(start_s=0, end_s=86_400, interval="1s"))
    assert [e.parameter for e in caught.value.errors] == ["interval"]
    # One fewer bucket than the limit is fine.
    ok = query(start_s=0, end_s=MAX_POINTS - 1, interval="1s")
    assert (await hub.telemetry.query(device, ok))["temp"] == [Point(BASE_US, 1.0)]


async def test_exactly_max_points_buckets_is_allowed(hub: Hub) -> None:
    device = await device_with_data(hub, {0: 1.0})
    q = query(start_s=0, end_s=MAX_POINTS, interval="1s")  # buckets 0 .. MAX_POINTS - 1
    assert (await hub.telemetry.query(device, q))["temp"] == [Point(BASE_US, 1.0)]


@pytest.mark.parametrize(
    ("text", "micros"),
    [("1ms", 1_000), ("30s", 30_000_000), ("1m", MINUTE_US), ("1d", 86_400_000_000)],
)
def test_parse_interval(text: str, micros: int) -> None:
    assert parse_interval(text) == micros


@pytest.mark.parametrize(
    "text",
    [
        *["0s", "1x", "", "1.5m", "m", "-1m", "1 m", "01m", "1M"],
        "1m\n",
    ],
)
def test_bad_interval_is_rejected(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_interval(text)
    assert [e.parameter for e in caught.value.errors] == ["interval"]
