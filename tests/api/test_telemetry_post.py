"""The telemetry POST, answered ahead of the framework, keeps the contract of every route."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from telehub.api.app import create_app
from telehub.api.telemetry_post import PATH
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


async def test_an_invalid_device_id_gets_a_parameter_error(api: Api) -> None:
    token = await api.device()

    r = await api.client.post(url("not an id"), json=at(0, t=1), headers=api.auth(token))

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
    # Refused input is recorded on every transport, this one included.
    rejected = (await api.client.get("/api/v1/rejected", headers=api.auth(api.admin))).json()
    assert [(e["transport"], e["device_id"], e["reason"]) for e in rejected["items"]] == [
        ("http", "no-such-device", "unknown-device")
    ]


async def test_a_device_token_for_another_device_is_403_before_its_body_is_judged(
    api: Api,
) -> None:
    token = await api.device("dev-1")
    await api.device("dev-2")

    r = await api.client.post(
        url("dev-2"), content=b'{"values": {"t": "NaN"', headers=api.auth(token)
    )

    api.problem(r, 403, "forbidden")
    rejected = (await api.client.get("/api/v1/rejected", headers=api.auth(api.admin))).json()
    assert rejected["items"] == []


async def test_no_framework_route_serves_it_and_openapi_still_describes_it(api: Api) -> None:
    """One handler serves every telemetry POST; FastAPI only documents it."""
    app = create_app(api.hub.settings, hub=api.hub)
    posts = [
        route
        for route in app.api.routes
        if isinstance(route, APIRoute) and route.path == PATH and "POST" in route.methods
    ]
    assert posts == []
    schema = (await api.client.get("/openapi.json")).json()
    post = schema["paths"][PATH]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/TelemetryBody"}
    assert "TelemetryBody" in schema["components"]["schemas"]
    accepted = post["responses"]["202"]["content"]["application/json"]["schema"]
    assert schema["components"]["schemas"][accepted["$ref"].rsplit("/", 1)[1]]["required"] == [
        "accepted",
        "duplicates",
        "state",
    ]
    assert post["security"] == [{"HTTPBearer": []}]
