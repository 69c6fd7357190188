"""QueryService and DeviceService: the same answers as the REST API, as typed messages."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from typing import Any

import grpc
import pytest

from telehub.client.grpc_client import GrpcClient
from telehub.domain.devices import Scope
from telehub.v1 import devices_pb2
from tests.api.conftest import iso, serve_api
from tests.grpc.conftest import T0, GrpcHub, at, refused
from tests.grpc.ingest_support import readings_batch

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DAY = {"start": at(-86_400), "end": at(86_400)}  # the REST tests' WINDOW


async def _seed(env: GrpcHub) -> None:
    """Two metrics over two hours: temperature every minute, humidity every 10 minutes."""
    token = await env.device()
    async with env.client(token) as client:
        await client.publish(
            [
                readings_batch("dev-1", 120, metric="temperature"),
                readings_batch("dev-1", 12, metric="humidity"),
            ]
        )


def _points(points: list[Any]) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for p in points:
        ts = p.ts.ToDatetime(UTC).isoformat().replace("+00:00", "Z")
        out.setdefault(p.metric, []).append((ts, p.value))
    return out


@pytest.mark.parametrize("agg", ["avg", "min", "max", "sum", "count"])
async def test_buckets_match_the_rest_query(grpc_hub: GrpcHub, agg: str) -> None:
    await _seed(grpc_hub)
    async with grpc_hub.client() as client:
        points = await client.query(
            "dev-1", interval=timedelta(seconds=7), agg=agg, start=at(-60), end=at(600)
        )
    async with serve_api(grpc_hub.hub, grpc_hub.admin) as api:
        rest = await api.query(interval="7s", agg=agg, **{"from": iso(at(-60)), "to": iso(at(600))})

    assert rest.status_code == 200, rest.text
    want = {
        metric: [(p["ts"].replace("+00:00", "Z"), p["value"]) for p in series]
        for metric, series in rest.json()["series"].items()
    }
    assert _points(points) == want
    assert len(want["temperature"]) == 18  # 120 s in 7 s buckets: not a trivial answer


async def test_raw_points_by_metric_in_either_order_with_a_limit(grpc_hub: GrpcHub) -> None:
    await _seed(grpc_hub)
    async with grpc_hub.client() as client:
        newest = await client.query(
            "dev-1", metrics=["temperature"], descending=True, limit=3, **DAY
        )
        oldest = await client.query("dev-1", metrics=["humidity"], limit=2, **DAY)

    assert [(p.metric, p.value) for p in newest] == [("temperature", v) for v in (119, 118, 117)]
    assert [p.ts.ToDatetime(UTC) for p in oldest] == [T0, T0 + timedelta(seconds=1)]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"interval": timedelta(microseconds=1500)}, "interval"),
        ({"start": at(10), "end": at(10)}, "start"),
        ({"limit": 10_001}, "limit"),
        ({"metrics": ["bad metric"]}, "metrics"),
        ({"agg": "max"}, "aggregate"),  # no interval: nothing to aggregate
        ({"page_token": "not-a-token"}, "page_token"),
    ],
    ids=["interval", "empty-range", "limit", "metric", "agg-alone", "page-token"],
)
async def test_a_bad_query_names_its_field(
    grpc_hub: GrpcHub, arguments: dict[str, Any], field: str
) -> None:
    await grpc_hub.device()
    async with grpc_hub.client() as client:
        error = await refused(client.query("dev-1", **({**DAY, **arguments})), INVALID)

    assert [f for f, _ in error.field_violations] == [field]


async def test_queries_need_a_read_token_and_an_existing_device(grpc_hub: GrpcHub) -> None:
    device = await grpc_hub.device()
    async with grpc_hub.client() as client:
        await refused(client.query("ghost"), grpc.StatusCode.NOT_FOUND)
        await refused(client.latest("ghost"), grpc.StatusCode.NOT_FOUND)
    async with grpc_hub.client(device) as as_device:
        await refused(as_device.latest("dev-1"), grpc.StatusCode.PERMISSION_DENIED)
        await refused(as_device.query("dev-1"), grpc.StatusCode.PERMISSION_DENIED)


async def test_latest_holds_the_newest_reading_of_each_metric_and_the_state(
    grpc_hub: GrpcHub,
) -> None:
    await _seed(grpc_hub)
    token = grpc_hub.admin
    async with grpc_hub.client(token) as client:
        await client.send_telemetry(
            "dev-1", {"firmware": "1.4.2", "door": {"open": True}}, ts=at(5)
        )
        latest = await client.latest("dev-1")

    assert [(r.metric, r.value, r.ts.ToDatetime(UTC)) for r in latest.readings] == [
        ("humidity", 11.0, at(11)),
        ("temperature", 119.0, at(119)),
    ]
    assert {s.key: s.value for s in latest.state} == {
        "door": _value({"open": True}),
        "firmware": _value("1.4.2"),
    }


def _value(data: object) -> Any:
    from google.protobuf import json_format, struct_pb2

    out = struct_pb2.Value()
    json_format.ParseDict(data, out)
    return out


async def test_devices_one_and_all_page_by_page_and_by_attribute(grpc_hub: GrpcHub) -> None:
    for n in range(5):
        await grpc_hub.device(f"dev-{n}", site="north" if n % 2 else "south")
    await grpc_hub.hub.devices.report_presence("dev-1", online=True, live=True)
    async with grpc_hub.client() as client:
        one = await client.get_device("dev-1")
        every = [d.id async for d in client.list_devices(page_size=2)]
        north = [d.id async for d in client.list_devices(attributes={"site": "north"})]
        await refused(client.get_device("ghost"), grpc.StatusCode.NOT_FOUND)
        too_big = client.list_devices(page_size=1001)
        await refused(too_big.__anext__(), INVALID)

    assert (one.id, one.presence, one.attributes["site"]) == (
        "dev-1",
        devices_pb2.PRESENCE_ONLINE,
        "north",
    )
    assert one.HasField("last_seen")
    assert one.HasField("created_at")
    assert every == [f"dev-{n}" for n in range(5)]
    assert north == ["dev-1", "dev-3"]


async def test_the_sync_client_reads_the_same(grpc_hub: GrpcHub) -> None:
    await _seed(grpc_hub)
    reader = await grpc_hub.token(Scope.READ)
    async with grpc_hub.client(reader) as client:
        want = (
            await client.query("dev-1", interval=timedelta(minutes=1), agg="max", **DAY),
            await client.latest("dev-1"),
            [d async for d in client.list_devices()],
        )

    def read() -> tuple[Any, ...]:
        with GrpcClient(grpc_hub.target, token=reader) as client:
            return (
                client.query("dev-1", interval=timedelta(minutes=1), agg="max", **DAY),
                client.latest("dev-1"),
                list(client.list_devices()),
            )

    assert await asyncio.to_thread(read) == want


# --- pages --------------------------------------------------------------------------------

MANY = 2_500


async def _seed_many(env: GrpcHub) -> None:
    """Two metrics measured together (the same timestamps) every second: 2.5 pages."""
    async with env.client(await env.device()) as client:
        await client.publish(
            [
                readings_batch("dev-1", MANY, metric="temperature"),
                readings_batch("dev-1", MANY, metric="humidity"),
            ]
        )


def _keys(points: list[Any]) -> list[tuple[str, int]]:
    return [(p.metric, p.ts.ToSeconds()) for p in points]


async def test_a_page_ends_with_a_token_that_leads_to_the_rest(grpc_hub: GrpcHub) -> None:
    await _seed_many(grpc_hub)
    async with grpc_hub.client() as client:
        first = await client.query("dev-1", **DAY)
        second = await client.query("dev-1", page_token=first[-1].next_page_token)
        every = [p async for p in client.query_all("dev-1", **DAY)]
        small_pages = [p async for p in client.query_all("dev-1", limit=700, **DAY)]

    assert len(first) == 2 * 1000
    assert [p.next_page_token for p in first[:-1]] == [""] * (len(first) - 1)
    assert first[-1].next_page_token
    assert _keys(second) == _keys(every[2000:4000])
    t0 = int(T0.timestamp())
    for points in (every, small_pages):
        got = sorted(_keys(points))
        assert got == sorted((m, t0 + s) for m in ("humidity", "temperature") for s in range(MANY))
        assert len(set(got)) == len(got)
    assert not every[-1].next_page_token
    # The same cursor as the REST API's next.
    async with serve_api(grpc_hub.hub, grpc_hub.admin) as api:
        rest = await api.client.get(
            "/api/v1/devices/dev-1/telemetry",
            params={"cursor": first[-1].next_page_token},
            headers=api.auth(api.admin),
        )
    assert rest.status_code == 200, rest.text
    assert [len(points) for points in rest.json()["series"].values()] == [1000, 1000]


async def test_the_sync_client_follows_pages_too(grpc_hub: GrpcHub) -> None:
    await _seed_many(grpc_hub)

    def read() -> list[tuple[str, int]]:
        with GrpcClient(grpc_hub.target, token=grpc_hub.admin) as client:
            return _keys(list(client.query_all("dev-1", metrics=["humidity"], limit=999, **DAY)))

    got = await asyncio.to_thread(read)
    assert got == [("humidity", int(T0.timestamp()) + s) for s in range(MANY)]


@pytest.mark.parametrize(
    ("grpc_arguments", "rest_params"),
    [
        ({"agg": "max"}, {"agg": "max"}),
        ({"interval": timedelta(seconds=1)}, {"interval": "1s"}),
        ({"start": at(10), "end": at(5)}, {"from": iso(at(10)), "to": iso(at(5))}),
    ],
    ids=["agg-alone", "too-many-buckets", "empty-range"],
)
async def test_a_refusal_says_the_same_as_the_rest_api_in_its_own_names(
    grpc_hub: GrpcHub, grpc_arguments: dict[str, Any], rest_params: dict[str, str]
) -> None:
    await grpc_hub.device()
    async with grpc_hub.client() as client:
        error = await refused(client.query("dev-1", **{**DAY, **grpc_arguments}), INVALID)
    async with serve_api(grpc_hub.hub, grpc_hub.admin) as api:
        rest = await api.query(**{"from": iso(DAY["start"]), "to": iso(DAY["end"]), **rest_params})

    problem = rest.json()
    renamed = {"`from`": "`start`", "`to`": "`end`", "`agg`": "`aggregate`"}
    want = problem["detail"]
    for old, new in renamed.items():
        want = want.replace(old, new)
    assert error.detail == want
    assert "`" in want
