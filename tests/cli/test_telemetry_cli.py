"""``telehub send``, ``query``, ``latest`` and ``rejected`` against a real server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from telehub.cli.exit_codes import Exit
from telehub.cli.remote import when
from telehub.client import AsyncClient
from telehub.hub import Hub
from tests.cli.conftest import Api, failed, succeeded
from tests.live.support import LiveServer

RANGE = ("--from", "2025-01-01T00:00:00Z", "--to", "2025-01-02T00:00:00Z")


@pytest.fixture
async def device(hub: Hub) -> str:
    await hub.devices.create(device_id="dev-1", name=None, attributes={})
    return "dev-1"


async def _send_three_minutes(api: Api, device: str) -> None:
    for minute, (t, h) in enumerate([(20.0, 40), (21.5, 41), (23.0, 42)]):
        ts = f"2025-01-01T10:0{minute}:30Z"
        succeeded(await api("send", device, f"t={t}", f"h={h}", "--ts", ts))


async def test_send_counts_readings_state_and_duplicates(api: Api, device: str) -> None:
    values = (
        "t=21.5",
        "h=40",
        "mode=eco",
        "door=false",
        'config={"fan": 2}',
        'label="42"',
        "--ts",
        "2025-01-01T10:00:00",  # no offset: UTC
    )
    first = succeeded(await api("send", device, *values))
    again = json.loads(succeeded(await api("send", device, *values, "--json")))
    latest = json.loads(succeeded(await api("latest", device, "--json")))

    assert first == "accepted 2, duplicates 0, state 4\n"
    assert again == {"accepted": 0, "duplicates": 2, "state": 4}
    assert latest["readings"] == {
        "h": {"ts": "2025-01-01T10:00:00Z", "value": 40.0},
        "t": {"ts": "2025-01-01T10:00:00Z", "value": 21.5},
    }
    assert {k: v["value"] for k, v in latest["state"].items()} == {
        "mode": "eco",
        "door": False,
        "config": {"fan": 2},
        "label": "42",
    }


async def test_latest_table_lists_readings_then_state(api: Api, device: str) -> None:
    succeeded(await api("send", device, "t=21.5", "mode=eco", "--ts", "2025-01-01T10:00:00Z"))

    table = succeeded(await api("latest", device)).splitlines()

    assert table[0].split() == ["name", "kind", "ts", "value"]
    assert table[1].split() == ["t", "reading", "2025-01-01T10:00:00.000000Z", "21.5"]
    assert table[2].split()[:2] == ["mode", "state"]
    assert table[2].split()[3] == "eco"


async def test_query_as_table_csv_and_json(api: Api, device: str) -> None:
    await _send_three_minutes(api, device)

    table = succeeded(await api("query", device, "--metric", "t", *RANGE)).splitlines()
    csv = succeeded(await api("query", device, *RANGE, "--csv", "--limit", "2"))
    body = json.loads(succeeded(await api("query", device, "-m", "h", *RANGE, "--json")))

    assert table[0].split() == ["metric", "ts", "value"]
    assert [line.split() for line in table[1:]] == [
        ["t", "2025-01-01T10:00:30.000000Z", "20.0"],
        ["t", "2025-01-01T10:01:30.000000Z", "21.5"],
        ["t", "2025-01-01T10:02:30.000000Z", "23.0"],
    ]
    # Pages of 2 per metric: --csv follows them to the end; the metrics share timestamps.
    assert csv.splitlines()[1:] == [
        "h,2025-01-01T10:00:30.000000Z,40.0",
        "h,2025-01-01T10:01:30.000000Z,41.0",
        "t,2025-01-01T10:00:30.000000Z,20.0",
        "t,2025-01-01T10:01:30.000000Z,21.5",
        "h,2025-01-01T10:02:30.000000Z,42.0",
        "t,2025-01-01T10:02:30.000000Z,23.0",
    ]
    assert csv.splitlines()[0] == "metric,ts,value"
    assert body["device_id"] == "dev-1"
    assert [p["value"] for p in body["series"]["h"]] == [40.0, 41.0, 42.0]
    assert list(body["series"]) == ["h"]


async def test_csv_writes_every_page_of_a_long_range(
    api: Api, device: str, server: LiveServer
) -> None:
    # Two metrics measured together every second: 2.5 default pages (1,000 per metric).
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    messages = [
        {"ts": (t0 + timedelta(seconds=s)).isoformat(), "values": {"a": s, "b": -s}}
        for s in range(2_500)
    ]
    async with AsyncClient(server.base, token=server.admin) as client:
        for start in range(0, 2_500, 1_000):
            await client.send_telemetry(device, messages[start : start + 1_000])

    rows = succeeded(await api("query", device, *RANGE, "--csv")).splitlines()

    assert rows[0] == "metric,ts,value"
    by_metric: dict[str, list[str]] = {"a": [], "b": []}
    for row in rows[1:]:
        metric, ts, _ = row.split(",")
        by_metric[metric].append(ts)
    want = [when(t0 + timedelta(seconds=s)) for s in range(2_500)]
    assert by_metric == {"a": want, "b": want}  # each once, in order, none missing


async def test_a_cut_table_says_so_where_csv_writes_every_page(api: Api, device: str) -> None:
    await _send_three_minutes(api, device)

    cut = await api("query", device, "-m", "t", *RANGE, "--limit", "2")
    whole = await api("query", device, "-m", "t", *RANGE, "--limit", "3")

    assert len(succeeded(cut).splitlines()) == 3  # the header and a page of 2
    assert "more points than shown for t: a page holds 2 per metric" in cut.stderr
    assert "--csv writes every page" in cut.stderr
    assert whole.stderr == ""


async def test_query_in_buckets(api: Api, device: str) -> None:
    await _send_three_minutes(api, device)

    buckets = json.loads(
        succeeded(
            await api(
                "query", device, "-m", "t", *RANGE, "--interval", "2m", "--agg", "max", "--json"
            )
        )
    )

    assert (buckets["interval"], buckets["agg"]) == ("2m", "max")
    assert [(p["ts"], p["value"]) for p in buckets["series"]["t"]] == [
        ("2025-01-01T10:00:00Z", 21.5),
        ("2025-01-01T10:02:00Z", 23.0),
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["--csv", "--json"],
        ["--agg", "max"],
        ["--from", "yesterday"],
    ],
)
async def test_query_refuses_flags_that_do_not_fit(api: Api, device: str, args: list[str]) -> None:
    result = await api("query", device, *args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


async def test_a_refused_send_names_the_field_and_is_listed_as_rejected(
    api: Api, device: str
) -> None:
    refused = failed(await api("send", device, "bad metric=1"), Exit.FAILED)
    table = succeeded(await api("rejected", "--device", device)).splitlines()
    listed = json.loads(succeeded(await api("rejected", "--json", "--limit", "5")))

    assert refused.startswith("telehub: 422 invalid-input: ")
    assert "(values/bad metric: " in refused
    assert table[0].split()[:5] == ["id", "received", "transport", "device", "reason"]
    assert table[1].split()[2:5] == ["http", "dev-1", "invalid-input"]
    assert [(r["device_id"], r["reason"]) for r in listed] == [("dev-1", "invalid-input")]
    assert "bad metric" in listed[0]["excerpt"]
