"""Telemetry over HTTP: ingest (auth, limits, duplicates, backpressure) and queries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from telehub.config import Settings
from telehub.domain.devices import Scope
from telehub.domain.readings import Telemetry
from telehub.runtime import open_hub
from tests.api.conftest import WINDOW, Api, at, iso, points, serve_api

T0_MS = 1_735_689_600_000
MIB = 1024 * 1024


def url(device_id: str = "dev-1", what: str = "telemetry") -> str:
    return f"/api/v1/devices/{device_id}/{what}"


# --- who may ingest ---------------------------------------------------------------------


@pytest.mark.parametrize("who", ["device", Scope.WRITE, Scope.ADMIN])
async def test_device_or_write_token_ingests_readings_and_state(api: Api, who: str) -> None:
    device_token = await api.device()
    token = device_token if who == "device" else await api.token(Scope(who))

    r = await api.ingest(at(0, temperature=21.5, humidity=40, door="open"), token)

    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 2, "duplicates": 0, "state": 1}
    assert await api.stored() == [(0, 21.5)]
    assert await api.stored("humidity") == [(0, 40.0)]


@pytest.mark.parametrize("who", ["read-token", "other-device"])
async def test_read_tokens_and_other_devices_may_not_ingest(api: Api, who: str) -> None:
    await api.device("dev-1")
    token = await (api.token(Scope.READ) if who == "read-token" else api.device("dev-2"))

    r = await api.ingest(at(0, temperature=1), token)

    api.problem(r, 403, "forbidden")
    assert await api.stored() == []


@pytest.mark.parametrize("token", [None, "thd_unknown", "tha_unknown", "garbage"])
async def test_missing_or_unknown_token_is_401_with_challenge(api: Api, token: str | None) -> None:
    await api.device()

    r = await api.ingest(at(0, temperature=1), token)

    api.problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"] == "Bearer"


async def test_write_token_for_unknown_device_is_404(api: Api) -> None:
    r = await api.ingest(at(0, temperature=1), await api.token(Scope.WRITE), device_id="ghost")

    api.problem(r, 404, "not-found")
    api.problem(await api.query("ghost"), 404, "not-found")


# --- bodies ------------------------------------------------------------------------------


async def test_resent_readings_are_reported_as_duplicates(api: Api) -> None:
    token = await api.device()
    first = [at(0, temperature=1), at(60, temperature=2)]

    assert (await api.ingest(first, token)).json() == {"accepted": 2, "duplicates": 0, "state": 0}
    assert (await api.ingest(first, token)).json() == {"accepted": 0, "duplicates": 2, "state": 0}
    overlap = [at(60, temperature=99), at(120, temperature=3)]
    assert (await api.ingest(overlap, token)).json() == {"accepted": 1, "duplicates": 1, "state": 0}

    # the first value stored for a timestamp is kept
    assert [v for _, v in await api.stored()] == [1.0, 2.0, 3.0]


async def test_list_body_epoch_milliseconds_and_offsets(api: Api) -> None:
    token = await api.device()
    body = [
        {"ts": T0_MS, "values": {"temperature": 20}},
        {"ts": T0_MS + 1500, "values": {"temperature": 20.5}},
        {"ts": "2025-01-01T02:00:03+02:00", "values": {"temperature": 21}},
        {"ts": "2025-01-01T00:00:04", "values": {"temperature": 22}},  # naive is UTC
    ]

    r = await api.ingest(body, token)

    assert r.json() == {"accepted": 4, "duplicates": 0, "state": 0}
    assert await api.stored() == [(0, 20.0), (1.5, 20.5), (3, 21.0), (4, 22.0)]


async def test_missing_ts_means_time_received(api: Api) -> None:
    token = await api.device()
    before = datetime.now(UTC)

    assert (await api.ingest({"values": {"temperature": 5}}, token)).status_code == 202

    after = datetime.now(UTC)
    latest = (await api.client.get(url(what="latest"), headers=api.auth(api.admin))).json()
    assert before <= datetime.fromisoformat(latest["readings"]["temperature"]["ts"]) <= after


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"values": {}}, "#/values"),
        ({"values": {"temperature": 1}, "colour": "red"}, "#/colour"),
        ({"ts": "yesterday", "values": {"temperature": 1}}, "#/ts"),
        ({"ts": True, "values": {"temperature": 1}}, "#/ts"),
        ({"ts": "1969-12-31T23:59:59Z", "values": {"temperature": 1}}, "#/ts"),
        ({"values": {"bad$name": 1}}, "#/values/bad$name"),
        ({"values": {"m" * 65: 1}}, "#/values/" + "m" * 65),
        ([{"values": {"temperature": 1}}, {"values": {}}], "#/1/values"),
        ("just a string", "#"),
        ('{"values": {', "#"),
        ('{"values": {"temperature": NaN}}', "#/values/temperature"),
        ('{"values": {"config": {"gain": Infinity}}}', "#/values/config"),
        ('{"ts": 1e300, "values": {"temperature": 1}}', "#/ts"),
    ],
)
async def test_invalid_body_points_at_the_field_and_is_recorded(
    api: Api, body: object, pointer: str
) -> None:
    token = await api.device()
    raw = body if isinstance(body, str) and body.startswith("{") else json.dumps(body)

    r = await api.client.post(
        url(), content=raw, headers={**api.auth(token), "Content-Type": "application/json"}
    )

    assert pointer in [e.get("pointer") for e in api.invalid(r)]
    rejected = await api.client.get(
        "/api/v1/rejected", params={"device_id": "dev-1"}, headers=api.auth(api.admin)
    )
    [entry] = rejected.json()["items"]
    assert entry["reason"] == "invalid-input"
    assert entry["device_id"] == "dev-1"
    assert entry["transport"] == "http"
    assert entry["excerpt"] == raw
    assert pointer in entry["detail"]
    assert await api.stored() == []


@pytest.mark.parametrize(("later", "pointer"), [(False, "#/ts"), (True, "#/1/ts")])
async def test_ts_over_five_minutes_ahead_is_refused(api: Api, later: bool, pointer: str) -> None:
    token = await api.device()
    soon = {"ts": iso(datetime.now(UTC) + timedelta(minutes=1)), "values": {"temperature": 1}}
    future = {"ts": iso(datetime.now(UTC) + timedelta(minutes=10)), "values": {"temperature": 2}}

    r = await api.ingest([soon, future] if later else future, token)

    assert [e.get("pointer") for e in api.invalid(r)] == [pointer]
    assert (await api.ingest(soon, token)).json()["accepted"] == 1


def padded(body: object, size: int) -> bytes:
    """``body`` as JSON, padded with whitespace to exactly ``size`` bytes."""
    raw = json.dumps(body).encode()
    return raw + b" " * (size - len(raw))


async def test_body_over_one_mib_is_413(api: Api) -> None:
    token = await api.device()

    over = await api.client.post(
        url(), content=padded(at(0, a=1), MIB + 1), headers=api.auth(token)
    )
    exact = await api.client.post(url(), content=padded(at(0, b=1), MIB), headers=api.auth(token))

    assert over.request.headers["content-length"] == str(MIB + 1)
    api.problem(over, 413, "payload-too-large")
    assert exact.status_code == 202, exact.text
    assert list((await api.query()).json()["series"]) == ["b"]


async def test_streamed_body_over_one_mib_is_413(api: Api) -> None:
    token = await api.device()
    raw = padded(at(0, temperature=1), MIB + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 64 * 1024):
            yield raw[start : start + 64 * 1024]

    r = await api.client.post(url(), content=chunks(), headers=api.auth(token))

    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    api.problem(r, 413, "payload-too-large")
    assert await api.stored() == []


def readings(n: int) -> list[dict[str, Any]]:
    return [{"ts": T0_MS + i, "values": {"temperature": i}} for i in range(n)]


async def test_more_than_ten_thousand_readings_is_413_and_recorded(api: Api) -> None:
    token = await api.device()

    r = await api.ingest(readings(10_001), token)

    api.problem(r, 413, "payload-too-large")
    assert await api.stored() == []
    assert (await api.ingest(readings(10_000), token)).json()["accepted"] == 10_000
    rejected = (await api.client.get("/api/v1/rejected", headers=api.auth(api.admin))).json()
    assert [e["reason"] for e in rejected["items"]] == ["payload-too-large"]


# --- queries ----------------------------------------------------------------------------

SERIES = [at(0, temperature=1, humidity=40), at(10, temperature=2), at(20, temperature=6)]
SERIES += [at(60, temperature=10, humidity=50), at(90, temperature=20), at(180, temperature=7)]


@pytest.fixture
async def series(api: Api) -> Api:
    token = await api.device()
    assert (await api.ingest(SERIES, token)).json()["accepted"] == 8
    return api


async def test_raw_points_in_range_with_limit_and_order(series: Api) -> None:
    async def ts(**params: Any) -> list[float]:
        r = await series.query(metric="temperature", **params)
        assert r.status_code == 200, r.text
        return [t for t, _ in points(r.json(), "temperature")]

    assert await series.stored() == [(0, 1), (10, 2), (20, 6), (60, 10), (90, 20), (180, 7)]
    # from is inclusive, to exclusive
    assert await ts(**{"from": at(10)["ts"], "to": at(90)["ts"]}) == [10, 20, 60]
    assert await ts(limit=2) == [0, 10]
    assert await ts(limit=2, order="desc") == [180, 90]


async def test_metric_filter_is_repeatable_and_defaults_to_all(series: Api) -> None:
    both = await series.query()
    one = await series.query(metric="humidity")
    two = await series.client.get(
        url(),
        params=[*WINDOW.items(), ("metric", "humidity"), ("metric", "temperature")],
        headers=series.auth(series.admin),
    )

    assert sorted(both.json()["series"]) == ["humidity", "temperature"]
    assert list(one.json()["series"]) == ["humidity"]
    assert points(one.json(), "humidity") == [(0, 40), (60, 50)]
    assert sorted(two.json()["series"]) == ["humidity", "temperature"]
    assert two.json()["series"] == both.json()["series"]


@pytest.mark.parametrize(
    ("agg", "values"),
    [
        ("avg", [3, 15, 7]),
        ("min", [1, 10, 7]),
        ("max", [6, 20, 7]),
        ("sum", [9, 30, 7]),
        ("count", [3, 2, 1]),
    ],
)
async def test_buckets_aggregate_server_side(series: Api, agg: str, values: list[float]) -> None:
    r = await series.query(metric="temperature", interval="1m", agg=agg)

    assert r.status_code == 200, r.text
    assert r.json()["interval"] == "1m"
    assert r.json()["agg"] == agg
    # buckets start on whole minutes; the empty one (2 min) is left out
    assert points(r.json(), "temperature") == list(zip([0, 60, 180], values, strict=True))


async def test_buckets_newest_first_and_limit_keeps_the_newest(series: Api) -> None:
    every = await series.query(metric="temperature", interval="1m", agg="max", order="desc")
    newest = await series.query(
        metric="temperature", interval="1m", agg="max", order="desc", limit=2
    )

    assert points(every.json(), "temperature") == [(180, 7), (60, 20), (0, 6)]
    assert points(newest.json(), "temperature") == [(180, 7), (60, 20)]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"interval": "1w"}, "interval"),
        ({"interval": "0s"}, "interval"),
        ({"interval": "fast"}, "interval"),
        ({"interval": "1ms"}, "interval"),  # 86.4 M buckets in a day: too many
        ({"agg": "median", "interval": "1m"}, "agg"),
        ({"from": "2025-01-02T00:00:00Z"}, "from"),
        ({"from": "2025-01-03T00:00:00Z"}, "from"),
        ({"from": "not a date"}, "from"),
        ({"limit": 0}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"metric": "bad$name"}, "metric"),
    ],
)
async def test_bad_query_names_the_parameter(
    series: Api, params: dict[str, str], parameter: str
) -> None:
    r = await series.query(**params)

    assert [e.get("parameter") for e in series.invalid(r)] == [parameter]


async def test_query_needs_read_scope_and_an_existing_device(api: Api) -> None:
    token = await api.device()

    api.problem(await api.client.get(url(), headers=api.auth(token)), 403, "forbidden")
    api.problem(await api.client.get(url()), 401, "unauthenticated")
    api.problem(await api.query("ghost"), 404, "not-found")
    read = api.auth(await api.token(Scope.READ))
    assert (await api.client.get(url(), params=WINDOW, headers=read)).status_code == 200


async def test_latest_holds_the_newest_reading_per_metric_and_state(api: Api) -> None:
    token = await api.device()
    await api.ingest(
        [at(60, temperature=2, door="closed"), at(0, temperature=1, door="open")], token
    )
    await api.ingest(at(30, temperature=9, humidity=40, mode={"eco": True}), token)  # late, older

    r = await api.client.get(url(what="latest"), headers=api.auth(api.admin))

    assert r.status_code == 200, r.text
    assert r.json() == {
        "device_id": "dev-1",
        "readings": {
            "temperature": {"ts": at(60)["ts"], "value": 2.0},
            "humidity": {"ts": at(30)["ts"], "value": 40.0},
        },
        "state": {
            "door": {"ts": at(60)["ts"], "value": "closed"},
            "mode": {"ts": at(30)["ts"], "value": {"eco": True}},
        },
    }


# --- health and metrics -------------------------------------------------------------------


async def test_health_endpoints_need_no_token(api: Api) -> None:
    healthz = await api.client.get("/healthz")
    readyz = await api.client.get("/readyz")

    assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
    assert (readyz.status_code, readyz.json()) == (200, {"status": "ready"})


async def test_metrics_need_a_token_and_count_what_was_ingested(api: Api) -> None:
    api.problem(await api.client.get("/metrics"), 401, "unauthenticated")
    token = await api.device()
    await api.ingest([at(0, temperature=1), at(1, temperature=2)], token)
    await api.ingest([at(1, temperature=2), at(2, temperature=3)], token)
    await api.ingest({"values": {}}, token)
    await api.ingest(readings(10_001), token)

    metrics = await api.metrics()

    assert metrics[("telehub_readings_accepted_total", ())] == 3
    assert metrics[("telehub_readings_duplicate_total", ())] == 1
    http = ("transport", "http")
    assert metrics[("telehub_rejected_total", (("reason", "invalid-input"), http))] == 1
    assert metrics[("telehub_rejected_total", (("reason", "payload-too-large"), http))] == 1
    assert metrics[("telehub_ingest_queue_readings", ())] == 0


# --- backpressure ------------------------------------------------------------------------


async def race(work: asyncio.Task[Any], event: asyncio.Event) -> None:
    """Wait for ``event``, failing at once if ``work`` finishes first (it should block)."""
    waiter = asyncio.ensure_future(event.wait())
    done, _ = await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        pytest.fail(f"finished before the writer was held: {work.result()}")


async def test_full_queue_answers_503_with_retry_after_and_drops_nothing(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        ingest_queue_readings=10_000, max_batch_readings=10_000, ingest_retry_after=2.0
    )
    async with open_hub(settings) as hub, serve_api(hub) as api:
        token = await api.device()
        writing, release = asyncio.Event(), asyncio.Event()
        write = hub.store.readings.write

        async def held(items: Sequence[Telemetry], *, received_us: int) -> list[int]:
            writing.set()
            await release.wait()
            return await write(items, received_us=received_us)

        monkeypatch.setattr(hub.store.readings, "write", held)
        filling = asyncio.create_task(api.ingest(readings(10_000), token))
        await race(filling, writing)

        r = await api.ingest(at(3600, temperature=1), token)

        api.problem(r, 503, "overloaded")
        assert r.headers["retry-after"] == "2"
        release.set()
        assert (await filling).json() == {"accepted": 10_000, "duplicates": 0, "state": 0}
        assert (await api.ingest(at(3600, temperature=1), token)).status_code == 202
        counted = await api.query(metric="temperature", interval="1d", agg="count")
        assert [v for _, v in points(counted.json(), "temperature")] == [10_001.0]
        assert (await api.metrics())[("telehub_ingest_backpressure_total", ())] == 1


async def test_ingest_after_shutdown_began_is_503_with_retry_after(api: Api) -> None:
    token = await api.device()
    api.hub.ingestor.close()

    r = await api.ingest(at(0, temperature=1), token)

    api.problem(r, 503, "overloaded")
    assert r.headers["retry-after"] == "1"
