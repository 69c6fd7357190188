"""Device commands over HTTP: queue one or many, follow them, and who may do either."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from telehub.domain.commands import MAX_PARAMS_BYTES, MAX_TTL_S, MIN_TTL_S
from telehub.domain.devices import Scope
from telehub.domain.readings import now_us
from tests.api.conftest import Api, url

BULK = "/api/v1/commands"
TTL_S = 60
REBOOT: dict[str, Any] = {"name": "reboot", "params": {"delay_s": 5}, "ttl_s": TTL_S}
COMMAND_FIELDS = {
    "id",
    "device_id",
    "batch_id",
    "name",
    "params",
    "status",
    "created_at",
    "expires_at",
    "sent_at",
    "delivered_at",
    "completed_at",
    "result",
}


def counts(**nonzero: int) -> dict[str, int]:
    statuses = ("pending", "queued", "sent", "delivered", "acked", "failed", "expired")
    return {s: nonzero.get(s, 0) for s in statuses}


async def online(api: Api, device_id: str = "dev-1", **attributes: object) -> str:
    """A device that reported online, as commands go out only to those; returns its token."""
    token = await api.device(device_id, **attributes)
    await api.hub.devices.report_presence(device_id, online=True, live=True)
    return token


async def post(
    api: Api, path: str, body: dict[str, Any], token: str | None = None
) -> httpx.Response:
    headers = api.auth(token or api.admin)
    return await api.client.post(path, json=body, headers=headers)


async def get(api: Api, path: str, token: str | None = None, **params: Any) -> httpx.Response:
    return await api.client.get(path, params=params, headers=api.auth(token or api.admin))


async def send(api: Api, device_id: str = "dev-1", **body: Any) -> dict[str, Any]:
    r = await post(api, url(device_id, "commands"), REBOOT | body)
    assert r.status_code == 202, r.text
    return dict(r.json())


async def bulk(api: Api, **body: Any) -> dict[str, Any]:
    r = await post(api, BULK, REBOOT | body)
    assert r.status_code == 202, r.text
    return dict(r.json())


# --- one device ----------------------------------------------------------------------------


async def test_send_answers_202_with_the_pending_command(api: Api) -> None:
    await online(api, "dev-1")

    r = await post(api, url("dev-1", "commands"), REBOOT)

    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == COMMAND_FIELDS
    assert body["id"].startswith("cmd-")
    assert (body["device_id"], body["name"], body["params"]) == ("dev-1", "reboot", {"delay_s": 5})
    assert (body["status"], body["batch_id"]) == ("pending", None)
    assert (body["sent_at"], body["completed_at"], body["result"]) == (None, None, None)
    created = datetime.fromisoformat(body["created_at"])
    assert datetime.fromisoformat(body["expires_at"]) - created == timedelta(seconds=60)
    one = await get(api, url("dev-1", f"commands/{body['id']}"))
    assert one.status_code == 200, one.text
    assert one.json() == body


async def test_a_command_to_a_device_that_never_connected_is_queued_and_batches_count_it(
    api: Api,
) -> None:
    await api.device("dev-1")  # never reported online
    await online(api, "dev-2")

    body = await send(api)
    mixed = await bulk(api, devices=["dev-1", "dev-2"])

    assert (body["status"], body["sent_at"], body["delivered_at"]) == ("queued", None, None)
    assert (mixed["status"], mixed["counts"]) == ("pending", counts(pending=1, queued=1))
    await api.hub.commands.claim_due()  # dev-2's goes out; dev-1's waits
    one = (await get(api, url("dev-1", f"commands/{body['id']}"))).json()
    assert one["status"] == "queued"
    r = await get(api, f"{BULK}/{mixed['batch_id']}")
    assert (r.json()["status"], r.json()["counts"]) == ("queued", counts(queued=1, sent=1))


async def test_params_and_ttl_have_defaults(api: Api) -> None:
    await online(api, "dev-1")

    r = await post(api, url("dev-1", "commands"), {"name": "ping"})

    assert r.status_code == 202, r.text
    body = r.json()
    assert body["params"] == {}
    created = datetime.fromisoformat(body["created_at"])
    assert datetime.fromisoformat(body["expires_at"]) - created == timedelta(seconds=300)


async def test_unknown_device_or_command_is_404(api: Api) -> None:
    await online(api, "dev-1")

    api.problem(await post(api, url("nobody", "commands"), REBOOT), 404, "not-found")
    api.problem(await get(api, url("nobody", "commands")), 404, "not-found")
    missing = await get(api, url("dev-1", "commands/cmd-0000000000000000"))
    api.problem(missing, 404, "not-found")


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"name": "has space"}, "#/name"),
        ({"name": "x" * 65}, "#/name"),
        ({"params": {}}, "#/name"),
        ({"name": "reboot", "ttl_s": MIN_TTL_S - 1}, "#/ttl_s"),
        ({"name": "reboot", "ttl_s": MAX_TTL_S + 1}, "#/ttl_s"),
        ({"name": "reboot", "ttl_s": "soon"}, "#/ttl_s"),
        ({"name": "reboot", "params": [1, 2]}, "#/params"),
        ({"name": "reboot", "params": {"b": "x" * MAX_PARAMS_BYTES}}, "#/params"),
        ({"name": "reboot", "colour": "red"}, "#/colour"),
        ({"name": "reboot", "devices": ["dev-1"]}, "#/devices"),
    ],
)
async def test_invalid_command_points_at_the_field_and_queues_nothing(
    api: Api, body: dict[str, Any], pointer: str
) -> None:
    await online(api, "dev-1")

    r = await post(api, url("dev-1", "commands"), body)

    assert pointer in [e.get("pointer") for e in api.invalid(r)]
    listed = await get(api, url("dev-1", "commands"))
    assert listed.json() == {"items": [], "next": None}


# --- who may do what ------------------------------------------------------------------------


async def test_sending_needs_a_write_token(api: Api) -> None:
    device_token = await online(api, "dev-1")
    read = await api.token(Scope.READ)
    write = await api.token(Scope.WRITE)
    one, many = url("dev-1", "commands"), BULK
    by_list = REBOOT | {"devices": ["dev-1"]}

    unauthenticated = await api.client.post(one, json=REBOOT)
    api.problem(unauthenticated, 401, "unauthenticated")
    api.problem(await api.client.post(many, json=by_list), 401, "unauthenticated")
    for token in (read, device_token):
        api.problem(await post(api, one, REBOOT, token), 403, "forbidden")
        api.problem(await post(api, many, by_list, token), 403, "forbidden")
    listed = await get(api, one)
    assert listed.json()["items"] == []

    assert (await post(api, one, REBOOT, write)).status_code == 202
    assert (await post(api, many, by_list, write)).status_code == 202


async def test_a_read_token_may_follow_commands_but_a_device_token_may_not(api: Api) -> None:
    device_token = await online(api, "dev-1")
    read = await api.token(Scope.READ)
    command = await send(api)
    batch = await bulk(api, devices=["dev-1"])
    paths = [
        url("dev-1", "commands"),
        url("dev-1", f"commands/{command['id']}"),
        f"{BULK}/{batch['batch_id']}",
    ]

    for path in paths:
        assert (await get(api, path, read)).status_code == 200, path
        api.problem(await get(api, path, device_token), 403, "forbidden")
        api.problem(await api.client.get(path), 401, "unauthenticated")


# --- listing --------------------------------------------------------------------------------


async def test_list_is_newest_first_and_next_walks_every_command_once(api: Api) -> None:
    await online(api, "dev-1")
    await online(api, "dev-2")
    sent = [(await send(api, name=f"c{n}"))["id"] for n in range(5)]
    await send(api, "dev-2")

    seen: list[str] = []
    pages: list[int] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        r = await get(api, url("dev-1", "commands"), **params)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [c["id"] for c in page["items"]]
        pages.append(len(page["items"]))
        if page["next"] is None:
            break
        assert page["next"] == page["items"][-1]["id"]
        params = {"limit": 2, "before": page["next"]}

    assert seen == sent[::-1]
    assert pages == [2, 2, 1]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"before": "cmd-0"}, "before")],
)
async def test_bad_list_parameters_are_named(
    api: Api, params: dict[str, Any], parameter: str
) -> None:
    await online(api, "dev-1")

    r = await get(api, url("dev-1", "commands"), **params)

    assert [e.get("parameter") for e in api.invalid(r)] == [parameter]


# --- bulk ---------------------------------------------------------------------------------


async def test_bulk_by_attributes_reaches_the_matching_devices(api: Api) -> None:
    await online(api, "north-1", site="north")
    await online(api, "north-2", site="north", floor=2)
    await online(api, "south-1", site="south")

    r = await post(api, BULK, REBOOT | {"attributes": {"site": "north"}})

    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == {"batch_id", "status", "counts", "commands"}
    assert body["batch_id"].startswith("bat-")
    assert (body["status"], body["counts"]) == ("pending", counts(pending=2))
    assert [c["device_id"] for c in body["commands"]] == ["north-1", "north-2"]
    assert all(c["batch_id"] == body["batch_id"] for c in body["commands"])
    assert all(set(c) == COMMAND_FIELDS for c in body["commands"])
    again = await get(api, f"{BULK}/{body['batch_id']}")
    assert again.status_code == 200, again.text
    assert again.json() == body
    south = await get(api, url("south-1", "commands"))
    assert south.json()["items"] == []


async def test_bulk_by_devices_collapses_duplicates(api: Api) -> None:
    for device_id in ("dev-a", "dev-b", "dev-c"):
        await online(api, device_id)

    body = await bulk(api, devices=["dev-c", "dev-a", "dev-c"])

    assert (body["status"], body["counts"]) == ("pending", counts(pending=2))
    # Sorted by device, as GET of the batch lists them.
    assert [c["device_id"] for c in body["commands"]] == ["dev-a", "dev-c"]
    listed = await get(api, url("dev-c", "commands"))
    assert [c["id"] for c in listed.json()["items"]] == [
        c["id"] for c in body["commands"] if c["device_id"] == "dev-c"
    ]


@pytest.mark.parametrize(
    ("targets", "pointer"),
    [
        ({"devices": ["dev-1", "ghost"]}, "#/devices"),
        ({"devices": []}, "#/devices"),
        ({"devices": ["Not Valid"]}, "#/devices/0"),
        ({"attributes": {"site": "east"}}, "#/attributes"),
        # An empty filter would match the whole fleet: refused, not "everything".
        ({"attributes": {}}, "#/attributes"),
        ({"devices": ["dev-1"], "attributes": {"site": "north"}}, "#"),
        ({}, "#"),
    ],
)
async def test_bad_bulk_targets_are_422_and_queue_nothing(
    api: Api, targets: dict[str, Any], pointer: str
) -> None:
    await online(api, "dev-1", site="north")

    r = await post(api, BULK, REBOOT | targets)

    assert pointer in [e.get("pointer") for e in api.invalid(r)]
    listed = await get(api, url("dev-1", "commands"))
    assert listed.json()["items"] == []


async def test_unknown_batch_is_404(api: Api) -> None:
    api.problem(await get(api, f"{BULK}/bat-0000000000000000"), 404, "not-found")


async def test_batch_status_follows_its_commands(api: Api) -> None:
    for device_id in ("dev-a", "dev-b", "dev-c"):
        await online(api, device_id)
    hub = api.hub

    async def batch(batch_id: str) -> tuple[str, dict[str, int]]:
        r = await get(api, f"{BULK}/{batch_id}")
        assert r.status_code == 200, r.text
        return r.json()["status"], r.json()["counts"]

    mixed = await bulk(api, devices=["dev-a", "dev-b", "dev-c"])
    ids = {c["device_id"]: c["id"] for c in mixed["commands"]}
    await hub.commands.claim_due()
    assert await batch(mixed["batch_id"]) == ("sent", counts(sent=3))

    await hub.commands.acknowledge("dev-a", ids["dev-a"], ok=True, result={"up": True})
    await hub.commands.acknowledge("dev-b", ids["dev-b"], ok=False, result="busy")
    # Open commands outrank outcomes: while one is out, the batch is still under way.
    assert await batch(mixed["batch_id"]) == ("sent", counts(sent=1, acked=1, failed=1))

    await hub.store.commands.expire(now_us=now_us() + (TTL_S + 1) * 1_000_000)
    assert await batch(mixed["batch_id"]) == ("expired", counts(acked=1, failed=1, expired=1))
    acked = (await get(api, url("dev-a", f"commands/{ids['dev-a']}"))).json()
    assert (acked["status"], acked["result"]) == ("acked", {"up": True})
    assert acked["sent_at"] is not None
    assert acked["completed_at"] is not None

    # Without an expiry, a failure is the worst outcome; all acked is success.
    for outcomes, expected in [((True, False), "failed"), ((True, True), "acked")]:
        other = await bulk(api, devices=["dev-a", "dev-b"])
        for command, ok in zip(other["commands"], outcomes, strict=True):
            await hub.commands.acknowledge(command["device_id"], command["id"], ok=ok, result=None)
        status, _ = await batch(other["batch_id"])
        assert status == expected
