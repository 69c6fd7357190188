"""Query pages: a page holds at most ``limit`` points per metric, says which metrics go on,
and its cursor leads to the rest with no point twice and none skipped, raw or in buckets,
oldest or newest first, whatever timestamps the metrics share across a page boundary."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from telehub.core.ports import Aggregate, Point
from telehub.core.telemetry import (
    DEFAULT_LIMIT,
    MAX_POINTS,
    SeriesPage,
    SeriesQuery,
    bucket_count,
    parse_interval,
)
from telehub.domain.readings import Reading, Telemetry, from_micros
from telehub.errors import InvalidInput
from telehub.hub import Hub
from tests.core.service_support import BASE_US, WRITER, query, readings

SECOND_US = 1_000_000


async def _device(
    hub: Hub, series: dict[str, dict[int, float]], device_id: str = "sensor-1"
) -> str:
    await hub.devices.create(device_id=device_id, name=None, attributes={})
    for metric, points in series.items():
        await hub.ingest.submit(
            WRITER, readings(device_id, metric, points), transport="test", payload=b""
        )
    return device_id


async def _all_pages(hub: Hub, device: str, q: SeriesQuery) -> list[SeriesPage]:
    pages = [await hub.telemetry.page(device, q)]
    while pages[-1].next is not None:
        assert len(pages) < 1000, "the cursor does not advance"
        pages.append(
            await hub.telemetry.page(
                device, SeriesQuery(None, None, None, None, cursor=pages[-1].next)
            )
        )
    return pages


def _joined(pages: list[SeriesPage]) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = {}
    for page in pages:
        for metric, points in page.series.items():
            out.setdefault(metric, []).extend(points)
    return out


# "a" and "b" share every timestamp (one message each second); "b" has fewer points, so
# the metrics end on different pages, and page bounds fall on timestamps both have.
SHARED = {
    "a": {s: float(s) for s in range(23)},
    "b": {s: float(-s) for s in range(0, 23, 2)},
}


@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize("limit", [1, 5, 6, 12])
async def test_pages_hold_every_point_once(hub: Hub, desc: bool, limit: int) -> None:
    device = await _device(hub, SHARED)
    everything = await hub.telemetry.query(device, query(limit=MAX_POINTS, desc=desc))

    pages = await _all_pages(hub, device, query(limit=limit, desc=desc))

    assert _joined(pages) == everything
    assert len(everything["a"]) == 23
    for page in pages[:-1]:
        assert page.next is not None
        # Only a full series can go on; one can also end with a page exactly full.
        full = {m for m, pts in page.series.items() if len(pts) == limit}
        assert page.truncated
        assert set(page.truncated) <= full
        assert all(len(points) <= limit for points in page.series.values())
    assert pages[-1].next is None
    assert pages[-1].truncated == []
    assert len(pages) == -(-23 // limit)  # no empty page after an exactly full one


async def test_a_page_stops_at_the_default_limit_and_says_so(hub: Hub) -> None:
    device = await _device(hub, {"a": {s: 1.0 for s in range(DEFAULT_LIMIT + 1)}})

    first = await hub.telemetry.page(device, query(end_s=10_000, limit=None))

    assert len(first.series["a"]) == DEFAULT_LIMIT
    assert first.truncated == ["a"]
    rest = await hub.telemetry.page(device, replace(query(end_s=10_000), cursor=first.next))
    assert rest.series["a"] == [Point(BASE_US + DEFAULT_LIMIT * SECOND_US, 1.0)]
    assert (rest.truncated, rest.next) == ([], None)


async def test_exactly_a_page_of_points_has_no_next(hub: Hub) -> None:
    device = await _device(hub, {"a": {s: 1.0 for s in range(5)}})
    page = await hub.telemetry.page(device, query(limit=5))
    assert (len(page.series["a"]), page.truncated, page.next) == (5, [], None)


@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize("agg", [Aggregate.AVG, Aggregate.COUNT])
async def test_bucket_pages_hold_every_bucket_once(hub: Hub, desc: bool, agg: Aggregate) -> None:
    # Readings every 7 s from 3 s on; the range starts off a bucket bound.
    device = await _device(hub, {"a": {s: float(s) for s in range(3, 600, 7)}, "b": {0: 1.0}})
    asked = query(start_s=5, end_s=600, interval="10s", agg=agg, desc=desc)
    everything = await hub.telemetry.query(device, asked)

    pages = await _all_pages(hub, device, replace(asked, limit=4))

    assert _joined(pages) == everything
    assert len(everything["a"]) == 59  # [0 s, 10 s) holds no reading from 5 s on
    assert len(pages) == 15
    assert all(p.interval == "10s" and p.agg is agg for p in pages)


async def test_a_default_window_stays_pinned_across_pages(hub: Hub) -> None:
    now_s = (datetime.now(UTC).timestamp() * SECOND_US - BASE_US) // SECOND_US
    device = await _device(hub, {"a": {int(now_s) - s: 1.0 for s in range(1, 4)}})
    first = await hub.telemetry.page(device, SeriesQuery(None, None, None, None, limit=2))
    # Stored after the first page, newer than its window's end ("now" then).
    later = Reading(
        device, "a", int(datetime.now(UTC).timestamp() * SECOND_US) + 60 * SECOND_US, 9.0
    )
    await hub.ingest.submit(WRITER, Telemetry(device, (later,), ()), transport="test", payload=b"")

    rest = await hub.telemetry.page(device, SeriesQuery(None, None, None, None, cursor=first.next))

    assert [p.value for p in first.series["a"] + rest.series["a"]] == [1.0, 1.0, 1.0]
    assert rest.next is None
    assert (rest.start_us, rest.end_us) == (first.start_us, first.end_us)


async def test_the_page_size_may_change_between_pages(hub: Hub) -> None:
    device = await _device(hub, {"a": {s: float(s) for s in range(10)}})
    first = await hub.telemetry.page(device, query(limit=3))
    rest = await hub.telemetry.page(
        device, SeriesQuery(None, None, None, None, limit=100, cursor=first.next)
    )
    assert [p.value for p in first.series["a"] + rest.series["a"]] == [float(s) for s in range(10)]


@pytest.mark.parametrize(
    ("changed", "parameter"),
    [
        ({"metrics": ["b"]}, "metric"),
        ({"start": from_micros(BASE_US + SECOND_US)}, "from"),
        ({"end": from_micros(BASE_US + 60 * SECOND_US)}, "to"),
        ({"interval": "1m"}, "interval"),
        ({"agg": Aggregate.MAX}, "agg"),
        ({"desc": True}, "order"),
    ],
)
async def test_a_cursor_refuses_parameters_of_another_query(
    hub: Hub, changed: dict[str, object], parameter: str
) -> None:
    device = await _device(hub, SHARED)
    asked = query(limit=2)
    first = await hub.telemetry.page(device, asked)
    # The same parameters again are fine.
    again = await hub.telemetry.page(device, replace(asked, cursor=first.next))
    assert again.series["a"][0].value == 2.0

    with pytest.raises(InvalidInput) as caught:
        await hub.telemetry.page(device, replace(asked, cursor=first.next, **changed))

    assert [e.parameter for e in caught.value.errors] == [parameter]
    assert "send the cursor alone" in caught.value.detail


@pytest.mark.parametrize(
    "cursor", ["", "nonsense", "e30", "eyJ2IjoxfQ", "W10", "eyJ2IjoyfQ", "%%%"]
)
async def test_a_cursor_this_api_did_not_give_is_refused(hub: Hub, cursor: str) -> None:
    device = await _device(hub, SHARED)
    with pytest.raises(InvalidInput) as caught:
        await hub.telemetry.page(device, SeriesQuery(None, None, None, None, cursor=cursor))
    assert [e.parameter for e in caught.value.errors] == ["cursor"]


async def test_a_cursor_belongs_to_its_device(hub: Hub) -> None:
    device = await _device(hub, SHARED)
    other = await _device(hub, SHARED, "sensor-2")
    first = await hub.telemetry.page(device, query(limit=2))
    with pytest.raises(InvalidInput) as caught:
        await hub.telemetry.page(other, SeriesQuery(None, None, None, None, cursor=first.next))
    assert [e.parameter for e in caught.value.errors] == ["cursor"]


# --- agg and interval ---------------------------------------------------------------------


async def test_agg_without_interval_is_refused_with_an_interval_that_fits(hub: Hub) -> None:
    device = await _device(hub, SHARED)
    with pytest.raises(InvalidInput) as caught:
        await hub.telemetry.page(device, query(start_s=0, end_s=86_400, agg=Aggregate.MAX))

    assert [e.parameter for e in caught.value.errors] == ["agg"]
    # A day in buckets that fit one page: 1,000 at most.
    assert "an `interval` of 5m makes at most 1,000 buckets" in caught.value.detail
    assert bucket_count(BASE_US, BASE_US + 86_400 * SECOND_US, parse_interval("5m")) <= 1000
    assert bucket_count(BASE_US, BASE_US + 86_400 * SECOND_US, parse_interval("1m")) > 1000


@pytest.mark.parametrize(
    ("interval", "end_s", "fits"),
    [
        ("1s", 86_400, "10s"),
        ("1ms", 3_600, "1s"),
        ("1m", 30 * 86_400, "5m"),
        ("1h", 5 * 365 * 86_400, "6h"),
    ],
)
async def test_too_many_buckets_is_refused_with_the_limit_and_an_interval_that_fits(
    hub: Hub, interval: str, end_s: int, fits: str
) -> None:
    device = await _device(hub, SHARED)
    with pytest.raises(InvalidInput) as caught:
        await hub.telemetry.page(device, query(end_s=end_s, interval=interval))

    assert [e.parameter for e in caught.value.errors] == ["interval"]
    assert "at most 10,000" in caught.value.detail
    assert f"use an `interval` of {fits} or wider" in caught.value.detail
    assert f"{fits} or wider" in caught.value.errors[0].detail
    page = await hub.telemetry.page(device, query(end_s=end_s, interval=fits))
    assert page.interval == fits
