"""Telemetry queries over HTTP: raw points, buckets, parameters, latest values."""

from __future__ import annotations

from typing import Any

import pytest

from telehub.domain.devices import Scope
from tests.api.conftest import WINDOW, Api, at, points, url

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
        ({"agg": "max"}, "agg"),  # no interval: nothing to aggregate
        ({"limit": 10_001}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
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


# --- pages ------------------------------------------------------------------------------

# Two metrics measured together (the same timestamps) every second, more than a page.
MANY = 2_500


@pytest.fixture
async def long_series(api: Api) -> Api:
    token = await api.device()
    messages = [at(s, temperature=s, humidity=-s) for s in range(MANY)]
    for start in range(0, MANY, 1000):
        r = await api.ingest(messages[start : start + 1000], token)
        assert r.json()["accepted"] == 2 * len(messages[start : start + 1000]), r.text
    return api


@pytest.mark.parametrize("follow", ["cursor alone", "same parameters", "link header"])
async def test_a_page_stops_at_1000_per_metric_and_its_cursor_leads_to_the_rest(
    long_series: Api, follow: str
) -> None:
    r = await long_series.query()
    first = r.json()

    assert r.status_code == 200, r.text
    assert {m: len(p) for m, p in first["series"].items()} == {
        "humidity": 1000,
        "temperature": 1000,
    }
    assert first["truncated"] == ["humidity", "temperature"]
    assert first["next"]
    assert r.headers["link"] == f'<{url()}?cursor={first["next"]}>; rel="next"'
    pages = [first]
    while pages[-1]["next"]:
        if follow == "cursor alone":
            r = await long_series.client.get(
                url(),
                params={"cursor": pages[-1]["next"]},
                headers=long_series.auth(long_series.admin),
            )
        elif follow == "same parameters":
            r = await long_series.query(cursor=pages[-1]["next"])
        else:
            link = r.headers["link"].removeprefix("<").split(">;")[0]
            r = await long_series.client.get(link, headers=long_series.auth(long_series.admin))
        assert r.status_code == 200, r.text
        pages.append(r.json())

    assert len(pages) == 3
    assert "link" not in r.headers
    assert pages[-1]["truncated"] == []
    for metric, sign in (("temperature", 1), ("humidity", -1)):
        got = [pt for page in pages for pt in points(page, metric)]
        assert got == [(s, sign * s) for s in range(MANY)]  # each once, none missing, in order


async def test_a_cursor_with_other_parameters_is_refused_naming_them(long_series: Api) -> None:
    first = (await long_series.query(limit=10)).json()

    r = await long_series.query(cursor=first["next"], order="desc")

    assert [e.get("parameter") for e in long_series.invalid(r)] == ["order"]
    assert "send the cursor alone" in r.json()["detail"]


async def test_agg_without_interval_says_to_add_one(series: Api) -> None:
    r = await series.query(agg="max")

    assert [e.get("parameter") for e in series.invalid(r)] == ["agg"]
    # WINDOW is two days: 2,880 buckets of a minute, 576 of five (one page).
    assert "needs an `interval`" in r.json()["detail"]
    assert "an `interval` of 5m makes at most 1,000 buckets" in r.json()["detail"]
    ok = await series.query(agg="max", interval="5m")
    assert ok.status_code == 200, ok.text


async def test_too_many_buckets_says_the_maximum_and_an_interval_that_fits(series: Api) -> None:
    r = await series.query(interval="1s")

    assert [e.get("parameter") for e in series.invalid(r)] == ["interval"]
    detail = r.json()["detail"]
    assert "172,800 buckets" in detail
    assert "at most 10,000" in detail
    assert "use an `interval` of 30s or wider" in detail
    assert (await series.query(interval="30s")).status_code == 200
    assert (await series.query(interval="15s")).status_code == 422
