"""One media-type rule for every body: JSON, none, or curl's default form type are read as
JSON; any other declared type is refused 415, on FastAPI's routes and on the telemetry POST
(served ahead of FastAPI) alike."""

from __future__ import annotations

import orjson
import pytest

from tests.api.conftest import Api, url

DEVICE = orjson.dumps({"id": "dev-1", "attributes": {"site": "north"}})
READING = orjson.dumps({"values": {"temperature": 21.5}})
READ_AS_JSON = [
    None,  # curl -H 'content-type:' or a client that sets none
    "application/x-www-form-urlencoded",  # what `curl -d` sends unless told otherwise
    "application/json",
    "application/json; charset=utf-8",
    "Application/Merge-Patch+JSON",
]
REFUSED = ["text/plain", "text/plain;charset=UTF-8", "multipart/form-data; boundary=x", "bogus"]


def typed(token: str, content_type: str | None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


@pytest.mark.parametrize("content_type", READ_AS_JSON)
async def test_a_json_body_is_read_as_json_on_every_endpoint(
    api: Api, content_type: str | None
) -> None:
    created = await api.client.post(
        "/api/v1/devices", content=DEVICE, headers=typed(api.admin, content_type)
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    posted = await api.client.post(url(), content=READING, headers=typed(token, content_type))
    assert posted.status_code == 202, posted.text
    patched = await api.client.patch(
        "/api/v1/devices/dev-1", content=b'{"name": "one"}', headers=typed(api.admin, content_type)
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "one"


@pytest.mark.parametrize("content_type", REFUSED)
async def test_another_declared_type_is_refused_415_on_every_endpoint(
    api: Api, content_type: str
) -> None:
    token = await api.device("dev-1")
    answers = [
        await api.client.post(
            "/api/v1/devices", content=orjson.dumps({"id": "dev-2"}),
            headers=typed(api.admin, content_type),
        ),
        await api.client.post(url(), content=READING, headers=typed(token, content_type)),
        await api.client.patch(
            "/api/v1/devices/dev-1", content=b'{"name": "x"}',
            headers=typed(api.admin, content_type),
        ),
    ]  # fmt: skip
    for answer in answers:
        body = api.problem(answer, 415, "unsupported-media-type")
        assert "application/json" in body["detail"]
    assert (await api.client.get("/api/v1/devices/dev-2", headers=api.auth(api.admin))).is_error
    assert await api.stored() == []


async def test_a_request_without_a_body_is_not_judged_by_its_type(api: Api) -> None:
    await api.device("dev-1")
    rotated = await api.client.post(
        "/api/v1/devices/dev-1/token", headers=typed(api.admin, "text/plain")
    )
    assert rotated.status_code == 200, rotated.text


async def test_a_form_body_that_is_not_json_is_invalid_input(api: Api) -> None:
    r = await api.client.post(
        "/api/v1/devices",
        content=b"id=dev-1&name=one",
        headers=typed(api.admin, "application/x-www-form-urlencoded"),
    )
    api.invalid(r)
