"""Device ids over HTTP: the identifiers real devices carry are accepted as they are,
in the path and in the body, case kept; ids no transport could carry are refused."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.api.conftest import WINDOW, Api, at

DEVICES = "/api/v1/devices"
# A MAC address, a Tasmota topic, a Zigbee IEEE address, a name.
REAL_IDS = ["aa:bb:cc:dd:ee:ff", "tasmota_1A2B3C", "0x00158d0001a2b3c4", "Greenhouse-2"]
BAD_IDS = ["a/b", "a+b", "a#b", "a b", "-lead", "é", "x" * 129]


@pytest.mark.parametrize("device_id", REAL_IDS)
async def test_a_real_device_id_is_created_posted_to_and_read_back(
    api: Api, device_id: str
) -> None:
    token = await api.device(device_id)

    sent = await api.ingest(at(0, temperature=21.5), token, device_id)
    escaped = await api.ingest(at(1, temperature=22.0), token, quote(device_id, safe=""))

    assert sent.status_code == escaped.status_code == 202, (sent.text, escaped.text)
    got = await api.client.get(f"{DEVICES}/{device_id}", headers=api.auth(api.admin))
    assert got.json()["id"] == device_id
    assert await api.stored(device_id=device_id) == [(0, 21.5), (1, 22.0)]


async def test_ids_are_case_sensitive(api: Api) -> None:
    upper = await api.device("Greenhouse-2")
    await api.device("greenhouse-2")

    # The token of one is not the other's: they are two devices.
    r = await api.ingest(at(0, temperature=1), upper, "greenhouse-2")

    api.problem(r, 403, "forbidden")
    items = (await api.client.get(DEVICES, headers=api.auth(api.admin))).json()["items"]
    assert sorted(d["id"] for d in items) == ["Greenhouse-2", "greenhouse-2"]


async def test_the_longest_id_is_128_characters(api: Api) -> None:
    longest = "a" * 128
    token = await api.device(longest)

    assert (await api.ingest(at(0, t=1), token, longest)).status_code == 202
    listed = await api.client.get(DEVICES, params={"after": "a" * 127}, headers=api.auth(api.admin))
    assert [d["id"] for d in listed.json()["items"]] == [longest]


@pytest.mark.parametrize("device_id", [*BAD_IDS, ""])
async def test_an_id_no_transport_could_carry_is_refused_on_create(
    api: Api, device_id: str
) -> None:
    r = await api.client.post(DEVICES, json={"id": device_id}, headers=api.auth(api.admin))

    assert [e["pointer"] for e in api.invalid(r)] == ["#/id"]


@pytest.mark.parametrize("device_id", BAD_IDS)
async def test_an_id_no_transport_could_carry_is_refused_in_the_path(
    api: Api, device_id: str
) -> None:
    path = quote(device_id, safe="")
    admin = api.auth(api.admin)

    posted = await api.client.post(f"{DEVICES}/{path}/telemetry", json=at(0, t=1), headers=admin)
    got = await api.client.get(f"{DEVICES}/{path}/telemetry", params=WINDOW, headers=admin)

    for r in (posted, got):
        if "/" in device_id:  # unescaped by the server: no route has that many segments
            api.problem(r, 404, "not-found")
        else:
            assert [e.get("parameter") for e in api.invalid(r)] == ["device_id"], r.text
