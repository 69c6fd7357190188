"""Device registry over HTTP: create, list, change, delete, rotate credentials."""

from __future__ import annotations

import re

import pytest

from telehub.domain.devices import Scope
from telehub.domain.readings import DEVICE_ID_PATTERN
from tests.api.conftest import Api, at

DEVICES = "/api/v1/devices"
READING = at(0, temperature=21.5)


# --- create ----------------------------------------------------------------------------


async def test_create_returns_the_device_and_a_working_token(api: Api) -> None:
    r = await api.client.post(
        DEVICES,
        json={"id": "greenhouse-1", "name": "Greenhouse 1", "attributes": {"site": "north"}},
        headers=api.auth(api.admin),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] == "greenhouse-1"
    assert body["name"] == "Greenhouse 1"
    assert body["attributes"] == {"site": "north"}
    assert body["created_at"]
    assert body["last_seen"] is None
    assert body["token"].startswith("thd_")

    sent = await api.ingest(READING, body["token"], "greenhouse-1")
    assert sent.status_code == 202, sent.text


async def test_token_is_shown_only_at_creation(api: Api) -> None:
    token = await api.device("dev-1")
    admin = api.auth(api.admin)

    one = await api.client.get(f"{DEVICES}/dev-1", headers=admin)
    listed = await api.client.get(DEVICES, headers=admin)

    assert one.status_code == 200
    assert "token" not in one.json()
    assert token not in one.text
    assert listed.status_code == 200
    assert all("token" not in item for item in listed.json()["items"])
    assert token not in listed.text


async def test_create_without_id_generates_one(api: Api) -> None:
    r = await api.client.post(DEVICES, json={}, headers=api.auth(api.admin))

    assert r.status_code == 201, r.text
    device_id = r.json()["id"]
    assert re.match(DEVICE_ID_PATTERN, device_id)
    assert r.json()["name"] == device_id
    again = await api.client.get(f"{DEVICES}/{device_id}", headers=api.auth(api.admin))
    assert again.status_code == 200
    assert again.json()["id"] == device_id


async def test_duplicate_id_is_a_conflict(api: Api) -> None:
    first_token = await api.device("dev-1", site="north")

    r = await api.client.post(
        DEVICES, json={"id": "dev-1", "attributes": {"site": "south"}}, headers=api.auth(api.admin)
    )

    api.problem(r, 409, "conflict")
    kept = await api.client.get(f"{DEVICES}/dev-1", headers=api.auth(api.admin))
    assert kept.json()["attributes"] == {"site": "north"}
    sent = await api.ingest(READING, first_token)
    assert sent.status_code == 202


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"id": "slash/in-it"}, "#/id"),
        ({"id": "-leading-dash"}, "#/id"),
        ({"id": "x" * 129}, "#/id"),
        ({"id": "has space"}, "#/id"),
        ({"name": ""}, "#/name"),
        ({"attributes": ["not", "an", "object"]}, "#/attributes"),
        ({"colour": "red"}, "#/colour"),
    ],
)
async def test_invalid_create_body_points_at_the_field(
    api: Api, body: dict[str, object], pointer: str
) -> None:
    r = await api.client.post(DEVICES, json=body, headers=api.auth(api.admin))

    errors = api.invalid(r)
    assert pointer in [e.get("pointer") for e in errors]
    listed = await api.client.get(DEVICES, headers=api.auth(api.admin))
    assert listed.json()["items"] == []


async def test_malformed_json_body_is_422_not_500(api: Api) -> None:
    r = await api.client.post(
        DEVICES,
        content=b'{"id": "dev-1",',
        headers={**api.auth(api.admin), "Content-Type": "application/json"},
    )

    api.invalid(r)


async def test_invalid_device_id_in_the_path_names_the_parameter(api: Api) -> None:
    r = await api.client.get(f"{DEVICES}/Not_Valid!", headers=api.auth(api.admin))

    errors = api.invalid(r)
    assert [e.get("parameter") for e in errors] == ["device_id"]


# --- who may do what --------------------------------------------------------------------


async def test_registry_needs_a_token(api: Api) -> None:
    r = await api.client.get(DEVICES)

    api.problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"] == "Bearer"


async def test_read_token_may_look_but_not_change(api: Api) -> None:
    await api.device("dev-1")
    read = api.auth(await api.token(Scope.READ))

    assert (await api.client.get(DEVICES, headers=read)).status_code == 200
    assert (await api.client.get(f"{DEVICES}/dev-1", headers=read)).status_code == 200
    api.problem(await api.client.post(DEVICES, json={}, headers=read), 403, "forbidden")
    api.problem(
        await api.client.patch(f"{DEVICES}/dev-1", json={"name": "x"}, headers=read),
        403,
        "forbidden",
    )
    api.problem(await api.client.delete(f"{DEVICES}/dev-1", headers=read), 403, "forbidden")
    api.problem(await api.client.post(f"{DEVICES}/dev-1/token", headers=read), 403, "forbidden")


async def test_device_token_cannot_use_the_registry(api: Api) -> None:
    token = await api.device("dev-1")

    r = await api.client.get(f"{DEVICES}/dev-1", headers=api.auth(token))

    api.problem(r, 403, "forbidden")


# --- list ------------------------------------------------------------------------------


async def test_pages_walk_every_device_once_in_id_order(api: Api) -> None:
    ids = [f"dev-{n:02d}" for n in (7, 3, 1, 6, 2, 5, 4)]
    for device_id in ids:
        await api.device(device_id)

    seen: list[str] = []
    pages = 0
    params: dict[str, str | int] = {"limit": 3}
    while True:
        r = await api.client.get(DEVICES, params=params, headers=api.auth(api.admin))
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        pages += 1
        if page["next"] is None:
            break
        params = {"limit": 3, "after": page["next"]}

    assert seen == sorted(ids)
    assert pages == 3


async def test_a_full_last_page_is_followed_by_an_empty_one(api: Api) -> None:
    for n in range(4):
        await api.device(f"dev-{n}")

    first = (await api.client.get(DEVICES, params={"limit": 2}, headers=api.auth(api.admin))).json()
    second = (
        await api.client.get(
            DEVICES, params={"limit": 2, "after": first["next"]}, headers=api.auth(api.admin)
        )
    ).json()
    third = (
        await api.client.get(
            DEVICES, params={"limit": 2, "after": second["next"]}, headers=api.auth(api.admin)
        )
    ).json()

    assert [d["id"] for d in first["items"]] == ["dev-0", "dev-1"]
    assert [d["id"] for d in second["items"]] == ["dev-2", "dev-3"]
    assert third == {"items": [], "next": None}


@pytest.mark.parametrize("limit", [0, 1001, "many"])
async def test_out_of_range_limit_names_the_parameter(api: Api, limit: int | str) -> None:
    r = await api.client.get(DEVICES, params={"limit": limit}, headers=api.auth(api.admin))

    assert [e.get("parameter") for e in api.invalid(r)] == ["limit"]


async def test_attribute_filters_match_and_combine(api: Api) -> None:
    await api.device("dev-a", site="north", floor=3, active=True)
    await api.device("dev-b", site="north", floor=1)
    await api.device("dev-c", site="south", floor=3)
    await api.device("dev-d")

    async def ids(*filters: str) -> list[str]:
        r = await api.client.get(
            DEVICES, params=[("attribute", f) for f in filters], headers=api.auth(api.admin)
        )
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()["items"]]

    assert await ids("site:north") == ["dev-a", "dev-b"]
    assert await ids("floor:3") == ["dev-a", "dev-c"]
    assert await ids("site:north", "floor:3") == ["dev-a"]
    assert await ids("active:true") == ["dev-a"]
    assert await ids("site:east") == []
    assert await ids() == ["dev-a", "dev-b", "dev-c", "dev-d"]


@pytest.mark.parametrize("bad", ["site", ":north"])
async def test_attribute_filter_must_be_key_colon_value(api: Api, bad: str) -> None:
    r = await api.client.get(DEVICES, params={"attribute": bad}, headers=api.auth(api.admin))

    assert [e.get("parameter") for e in api.invalid(r)] == ["attribute"]


# --- one device: read, change, delete ----------------------------------------------------


async def test_get_unknown_device_is_404(api: Api) -> None:
    r = await api.client.get(f"{DEVICES}/nobody", headers=api.auth(api.admin))

    body = api.problem(r, 404, "not-found")
    assert body["instance"] == f"{DEVICES}/nobody"


async def test_patch_name_keeps_attributes(api: Api) -> None:
    await api.device("dev-1", site="north")

    r = await api.client.patch(
        f"{DEVICES}/dev-1", json={"name": "Greenhouse North"}, headers=api.auth(api.admin)
    )

    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Greenhouse North"
    assert r.json()["attributes"] == {"site": "north"}
    stored = await api.client.get(f"{DEVICES}/dev-1", headers=api.auth(api.admin))
    assert stored.json()["name"] == "Greenhouse North"


async def test_patch_attributes_replaces_them_all(api: Api) -> None:
    await api.device("dev-1", site="north", floor=3)

    r = await api.client.patch(
        f"{DEVICES}/dev-1", json={"attributes": {"site": "south"}}, headers=api.auth(api.admin)
    )

    assert r.status_code == 200, r.text
    assert r.json()["attributes"] == {"site": "south"}
    assert r.json()["name"] == "dev-1"
    filtered = await api.client.get(
        DEVICES, params={"attribute": "floor:3"}, headers=api.auth(api.admin)
    )
    assert filtered.json()["items"] == []


async def test_patch_refuses_unknown_fields_and_devices(api: Api) -> None:
    await api.device("dev-1")
    admin = api.auth(api.admin)

    bad = await api.client.patch(f"{DEVICES}/dev-1", json={"token": "x"}, headers=admin)
    missing = await api.client.patch(f"{DEVICES}/nobody", json={"name": "x"}, headers=admin)

    assert "#/token" in [e.get("pointer") for e in api.invalid(bad)]
    api.problem(missing, 404, "not-found")


async def test_delete_removes_the_device_its_readings_and_its_token(api: Api) -> None:
    token = await api.device("dev-1")
    admin = api.auth(api.admin)
    sent = await api.ingest(READING, token)
    assert sent.json()["accepted"] == 1

    r = await api.client.delete(f"{DEVICES}/dev-1", headers=admin)

    assert r.status_code == 204
    assert r.content == b""
    api.problem(await api.client.get(f"{DEVICES}/dev-1", headers=admin), 404, "not-found")
    api.problem(await api.client.delete(f"{DEVICES}/dev-1", headers=admin), 404, "not-found")
    api.problem(await api.query("dev-1"), 404, "not-found")
    api.problem(
        await api.ingest(READING, token),
        401,
        "unauthenticated",
    )

    # A new device under the same id starts empty: nothing of the old one survives.
    await api.device("dev-1")
    series = await api.query("dev-1")
    latest = await api.client.get(f"{DEVICES}/dev-1/latest", headers=admin)
    assert series.json()["series"] == {}
    assert latest.json()["readings"] == {}
    assert latest.json()["state"] == {}


# --- token rotation ---------------------------------------------------------------------


async def test_rotation_retires_the_old_token_at_once(api: Api) -> None:
    old = await api.device("dev-1")

    r = await api.client.post(f"{DEVICES}/dev-1/token", headers=api.auth(api.admin))

    assert r.status_code == 200, r.text
    new = r.json()["token"]
    assert r.json()["device_id"] == "dev-1"
    assert new.startswith("thd_")
    assert new != old
    refused = await api.ingest(READING, old)
    api.problem(refused, 401, "unauthenticated")
    accepted = await api.ingest(READING, new)
    assert accepted.status_code == 202, accepted.text


async def test_rotating_an_unknown_device_is_404(api: Api) -> None:
    r = await api.client.post(f"{DEVICES}/nobody/token", headers=api.auth(api.admin))

    api.problem(r, 404, "not-found")


# --- outside the routes -----------------------------------------------------------------


async def test_unknown_paths_and_methods_answer_with_problems(api: Api) -> None:
    missing = await api.client.get("/api/v1/nothing-here", headers=api.auth(api.admin))
    wrong = await api.client.put(DEVICES, json={}, headers=api.auth(api.admin))

    api.problem(missing, 404, "not-found")
    api.problem(wrong, 405, "method-not-allowed")
