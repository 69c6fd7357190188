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
from telehub.hub import open_hub
from tests.api.conftest import Api, at, iso, points, serve_api, url

T0_MS = 1_735_689_600_000
MIB = 1024 * 1024


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


async def test_epoch_seconds_are_refused_with_what_to_send_instead(api: Api) -> None:
    # A fresh user's first body: time.time() as ts. Stored, it would be January 1970.
    token = await api.device()
    seconds = int(datetime.now(UTC).timestamp())

    r = await api.ingest({"ts": seconds, "values": {"temperature": 5}}, token)

    assert api.invalid(r) == [
        {
            "pointer": "#/ts",
            "detail": "before 2000-01-01: looks like seconds; "
            "send milliseconds, or an ISO 8601 string",
        }
    ]
    latest = (await api.client.get(url(what="latest"), headers=api.auth(api.admin))).json()
    assert latest["readings"] == {}


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
