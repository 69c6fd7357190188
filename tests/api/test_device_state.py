"""Device state over HTTP: a value that is not a number for a metric of the device is
refused (not made state under the metric's name), and a state key can be removed."""

from __future__ import annotations

from typing import Any

from telehub.domain.devices import Scope
from tests.api.conftest import Api, at, url

STATE = "/api/v1/devices/dev-1/state"


async def _latest(api: Api) -> dict[str, Any]:
    r = await api.client.get(url(what="latest"), headers=api.auth(api.admin))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_decimal_comma_for_a_metric_is_refused_pointing_at_the_value(api: Api) -> None:
    token = await api.device()
    assert (await api.ingest(at(0, temperature=21.0), token)).status_code == 202

    r = await api.ingest(at(1, temperature="21,5"), token)

    body = api.problem(r, 422, "invalid-input")
    assert body["detail"] == "'temperature' is a metric of device 'dev-1' and needs a number"
    assert body["errors"] == [
        {
            "pointer": "#/values/temperature",
            "detail": "is a metric of this device and needs a number, not the string '21,5'",
        }
    ]
    latest = await _latest(api)
    assert (list(latest["readings"]), latest["state"]) == (["temperature"], {})


async def test_a_state_key_is_deleted_with_write_scope(api: Api) -> None:
    token = await api.device()
    await api.ingest(at(0, door="open", mode="eco"), token)
    writer = api.auth(await api.token(Scope.WRITE))

    deleted = await api.client.delete(f"{STATE}/door", headers=writer)
    again = await api.client.delete(f"{STATE}/door", headers=writer)

    assert deleted.status_code == 204, deleted.text
    api.problem(again, 404, "not-found")
    assert list((await _latest(api))["state"]) == ["mode"]


async def test_deleting_state_needs_write_scope_and_an_existing_device(api: Api) -> None:
    token = await api.device()
    await api.ingest(at(0, door="open"), token)
    reader = api.auth(await api.token(Scope.READ))

    api.problem(await api.client.delete(f"{STATE}/door", headers=reader), 403, "forbidden")
    api.problem(await api.client.delete(f"{STATE}/door", headers=api.auth(token)), 403, "forbidden")
    missing = await api.client.delete(
        "/api/v1/devices/ghost/state/door", headers=api.auth(api.admin)
    )
    api.problem(missing, 404, "not-found")
    bad_key = await api.client.delete(f"{STATE}/bad key", headers=api.auth(api.admin))
    assert [e.get("parameter") for e in api.invalid(bad_key)] == ["key"]
    assert list((await _latest(api))["state"]) == ["door"]
