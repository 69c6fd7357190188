"""``telehub devices list|create|show|update|delete`` against a real server."""

from __future__ import annotations

import json

import pytest

from telehub.cli.exit_codes import Exit
from telehub.hub import Hub
from tests.cli.conftest import Api, failed, succeeded, telehub
from tests.live.support import LiveServer


async def test_create_prints_the_token_once_and_list_shows_the_device(
    api: Api, server: LiveServer
) -> None:
    created = await api(
        "devices", "create", "pump-7", "--name", "Pump [bold]7", "--attr", "site=north"
    )

    lines = succeeded(created).splitlines()
    assert lines[0] == "created device pump-7"
    assert lines[1].startswith("token: thd_")
    assert "shown only this once" in created.stderr
    token = lines[1].removeprefix("token: ")
    async with server.http() as http:  # the printed token is the device's
        sent = await http.post(
            "/api/v1/devices/pump-7/telemetry",
            json={"values": {"t": 1}},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert sent.status_code == 202

    listed = succeeded(await api("devices", "list"))
    header, row = [line for line in listed.splitlines() if "pump-7" in line or "last seen" in line]
    assert header.split() == ["id", "name", "online", "last", "seen", "attributes"]
    assert "Pump [bold]7" in row  # a name is text, never rich markup
    assert "unknown" in row  # no presence report yet
    assert "site=north" in row
    assert "never" not in row  # it just sent a reading


async def test_create_json_has_the_token_and_a_generated_id(api: Api) -> None:
    created = json.loads(succeeded(await api("devices", "create", "--json")))
    assert created["token"].startswith("thd_")
    assert created["id"]
    assert created["attributes"] == {}


async def test_create_twice_is_a_one_line_error_and_list_says_never(api: Api) -> None:
    succeeded(await api("devices", "create", "dup"))

    again = failed(await api("devices", "create", "dup"), Exit.FAILED)
    listed = succeeded(await api("devices", "list"))

    assert again.startswith("telehub: 409 ")
    assert "already exists" in again
    row = next(line for line in listed.splitlines() if "dup" in line)
    assert "never" in row


@pytest.mark.parametrize(
    ("args", "says"),
    [(["Bad Id"], "letters, digits"), (["--attr", "novalue"], "is not key=value")],
)
async def test_create_refuses_bad_flags_without_a_server(args: list[str], says: str) -> None:
    result = await telehub("devices", "create", *args, "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert says in result.stderr
    assert "cannot reach" not in result.stderr


async def test_list_json_filters_by_attribute_and_limits(api: Api, hub: Hub) -> None:
    for n, site in enumerate(["north", "south", "north"]):
        await hub.devices.create(device_id=f"dev-{n}", name=None, attributes={"site": site})

    everything = json.loads(succeeded(await api("devices", "list", "--json")))
    north = json.loads(succeeded(await api("devices", "list", "--attr", "site=north", "--json")))
    first = json.loads(succeeded(await api("devices", "list", "--limit", "1", "--json")))
    nothing = json.loads(succeeded(await api("devices", "list", "--attr", "site=x", "--json")))

    assert [d["id"] for d in everything] == ["dev-0", "dev-1", "dev-2"]
    assert everything[0]["last_seen"] is None
    assert [d["id"] for d in north] == ["dev-0", "dev-2"]
    assert [d["id"] for d in first] == ["dev-0"]
    assert nothing == []


async def test_show_in_both_forms(api: Api, hub: Hub) -> None:
    await hub.devices.create(device_id="dev-1", name="Boiler", attributes={"floor": 2})

    shown = succeeded(await api("devices", "show", "dev-1"))
    as_json = json.loads(succeeded(await api("devices", "show", "dev-1", "--json")))

    fields = {line.split()[0]: line.split()[-1] for line in shown.splitlines() if line.strip()}
    assert fields["id"] == "dev-1"
    assert fields["name"] == "Boiler"
    assert fields["attributes"] == "floor=2"
    assert fields["online"] == "unknown"
    assert as_json["name"] == "Boiler"
    assert as_json["attributes"] == {"floor": 2}


async def test_update_renames_and_sets_only_the_named_attributes(api: Api, hub: Hub) -> None:
    await hub.devices.create(
        device_id="dev-1", name=None, attributes={"site": "north", "floor": "1"}
    )

    updated = json.loads(
        succeeded(
            await api(
                "devices",
                "update",
                "dev-1",
                "--name",
                "Pump",
                "--attr",
                "floor=2",
                "--attr",
                "zone=b",
                "--json",
            )
        )
    )
    renamed = succeeded(await api("devices", "update", "dev-1", "--name", "Pump 2"))

    assert updated["name"] == "Pump"
    assert updated["attributes"] == {"site": "north", "floor": "2", "zone": "b"}
    assert "Pump 2" in renamed
    assert "floor=2 site=north zone=b" in renamed
    assert (await hub.devices.get("dev-1")).name == "Pump 2"


async def test_update_needs_something_to_change(api: Api, hub: Hub) -> None:
    await hub.devices.create(device_id="dev-1", name=None, attributes={})
    result = await api("devices", "update", "dev-1")
    assert result.exit_code == 2
    assert "nothing to change" in result.stderr


async def test_delete_asks_first_unless_yes(api: Api, hub: Hub) -> None:
    await hub.devices.create(device_id="dev-1", name=None, attributes={})

    declined = await api("devices", "delete", "dev-1", input="n\n")
    assert declined.exit_code == 1
    assert (await hub.devices.get("dev-1")).id == "dev-1"

    confirmed = await api("devices", "delete", "dev-1", input="y\n")
    assert "Delete device dev-1" in confirmed.stderr
    # (CliRunner echoes the typed answer onto stdout; a terminal shows it by itself.)
    assert succeeded(confirmed).splitlines()[-1] == "deleted device dev-1"
    await hub.devices.create(device_id="dev-2", name=None, attributes={})
    deleted = json.loads(succeeded(await api("devices", "delete", "dev-2", "--yes", "--json")))
    assert deleted == {"id": "dev-2", "deleted": True}

    gone = failed(await api("devices", "show", "dev-1"), Exit.FAILED)
    assert gone == "telehub: 404 not-found: device 'dev-1' does not exist"


async def test_an_attribute_over_its_limit_is_a_one_line_error_naming_it(api: Api) -> None:
    succeeded(await api("devices", "create", "pump-1", "--attr", "site=north"))

    blob = "blob=" + "x" * 9000
    created = failed(await api("devices", "create", "pump-2", "--attr", blob), Exit.FAILED)
    updated = failed(await api("devices", "update", "pump-1", "--attr", blob), Exit.FAILED)

    for line in (created, updated):
        assert line.startswith("telehub: 422 "), line
        assert "(attributes/blob: at most 8192 bytes as JSON)" in line
        assert "x" * 201 not in line
    shown = json.loads(succeeded(await api("devices", "show", "pump-1", "--json")))
    assert shown["attributes"] == {"site": "north"}
