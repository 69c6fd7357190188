"""The framework-free telemetry POST keeps the contract of the documented route."""

from __future__ import annotations

import pytest

from telehub.domain.devices import Scope
from tests.api.conftest import Api, at, url


@pytest.mark.parametrize(
    "authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "tha_no-scheme"]
)
async def test_a_malformed_authorization_header_is_401_with_the_challenge(
    api: Api, authorization: str
) -> None:
    await api.device()

    r = await api.client.post(url(), json=at(0, t=1), headers={"Authorization": authorization})

    body = api.problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"] == "Bearer"
    assert body["instance"] == url()
    assert await api.stored("t") == []


async def test_the_scheme_is_case_insensitive_as_in_rfc_7235(api: Api) -> None:
    token = await api.device()

    r = await api.client.post(url(), json=at(0, t=1), headers={"Authorization": f"bearer {token}"})

    assert r.status_code == 202, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"accepted": 1, "duplicates": 0, "state": 0}


async def test_an_invalid_device_id_gets_the_framework_parameter_error(api: Api) -> None:
    token = await api.device()

    r = await api.client.post(url("Not_A_Slug"), json=at(0, t=1), headers=api.auth(token))

    assert [e.get("parameter") for e in api.invalid(r)] == ["device_id"]


async def test_other_methods_on_the_path_are_the_framework_s(api: Api) -> None:
    token = await api.device()

    r = await api.client.put(url(), json=at(0, t=1), headers=api.auth(token))

    api.problem(r, 405, "method-not-allowed")


async def test_an_invalid_body_is_422_with_its_pointer_and_recorded(api: Api) -> None:
    token = await api.device()

    r = await api.client.post(url(), content=b'{"values": {"t": "NaN"', headers=api.auth(token))

    assert api.invalid(r)
    rejected = (await api.client.get("/api/v1/rejected", headers=api.auth(api.admin))).json()
    assert [(e["transport"], e["device_id"]) for e in rejected["items"]] == [("http", "dev-1")]


async def test_an_api_token_posting_for_a_missing_device_is_404(api: Api) -> None:
    await api.device()
    writer = await api.token(Scope.WRITE)

    r = await api.ingest(at(0, t=1), writer, device_id="no-such-device")

    api.problem(r, 404, "not-found")
    assert (await api.ingest(at(0, t=1), writer)).status_code == 202
