"""Device commands over real storage: queueing, sending at most once, acks, expiry, batches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from telehub.core.commands import SEND_MARGIN_US
from telehub.domain.commands import (
    MAX_PARAMS_BYTES,
    MAX_TTL_S,
    MIN_TTL_S,
    CommandStatus,
)
from telehub.domain.readings import now_us
from telehub.errors import CommandClosed, InvalidInput, NotFound, UnknownCommand
from telehub.hub import Hub
from tests.core.commands_support import SECOND_US, add_devices, claim_at, pointers, send, stored

# --- send ------------------------------------------------------------------------------


async def test_send_queues_a_pending_command_that_expires_after_its_ttl(hub: Hub) -> None:
    await add_devices(hub, "pump")
    before = now_us()

    command = await hub.commands.send(
        "pump", name="set_interval", params={"seconds": 30, "tags": ["a"]}, ttl_s=90
    )

    assert command.status is CommandStatus.PENDING
    assert command.id.startswith("cmd-")
    assert (command.device_id, command.name, command.batch_id) == ("pump", "set_interval", None)
    assert command.params == {"seconds": 30, "tags": ["a"]}
    assert before <= command.created_us <= now_us()
    assert command.expires_us == command.created_us + 90 * SECOND_US
    assert (command.sent_us, command.done_us, command.result) == (None, None, None)
    assert await hub.commands.get("pump", command.id) == command


async def test_send_to_an_unknown_device_is_not_found_and_queues_nothing(hub: Hub) -> None:
    with pytest.raises(NotFound):
        await send(hub, "ghost")
    assert await hub.commands.claim_due() == []


@pytest.mark.parametrize(
    ("name", "ttl_s", "params", "expected"),
    [
        ("", 60, {}, ["#/name"]),
        ("has space", 60, {}, ["#/name"]),
        ("reboot/now", 60, {}, ["#/name"]),
        ("x" * 65, 60, {}, ["#/name"]),
        ("reboot", 0, {}, ["#/ttl_s"]),
        ("reboot", MIN_TTL_S - 1, {}, ["#/ttl_s"]),
        ("reboot", MAX_TTL_S + 1, {}, ["#/ttl_s"]),
        ("reboot", 60, {"blob": "x" * (MAX_PARAMS_BYTES - 10)}, ["#/params"]),
        ("bad name", -1, {}, ["#/name", "#/ttl_s"]),
    ],
)
async def test_invalid_commands_point_at_each_bad_field(
    hub: Hub, name: str, ttl_s: int, params: dict[str, Any], expected: list[str]
) -> None:
    await add_devices(hub, "pump")

    with pytest.raises(InvalidInput) as single:
        await hub.commands.send("pump", name=name, params=params, ttl_s=ttl_s)
    with pytest.raises(InvalidInput) as bulk:
        await hub.commands.send_bulk(
            device_ids=["pump"], attributes=None, name=name, params=params, ttl_s=ttl_s
        )

    assert pointers(single) == expected
    assert pointers(bulk) == expected
    assert await hub.commands.claim_due() == []


async def test_limits_are_inclusive(hub: Hub) -> None:
    await add_devices(hub, "pump")
    # {"b":"…"} is the string plus 8 bytes of JSON.
    largest = {"b": "x" * (MAX_PARAMS_BYTES - 8)}

    command = await hub.commands.send(
        "pump", name="A.b_c-9" * 9 + "x", params=largest, ttl_s=MAX_TTL_S
    )

    assert command.expires_us == command.created_us + MAX_TTL_S * SECOND_US
    assert (await hub.commands.get("pump", command.id)).params == largest
    with pytest.raises(InvalidInput):
        await hub.commands.send("pump", name="x", params={"b": largest["b"] + "x"}, ttl_s=60)


# --- claiming: at most once, never when expired ------------------------------------------


async def test_claim_marks_sent_oldest_first_and_only_once(hub: Hub) -> None:
    await add_devices(hub, "pump")
    made = [await send(hub, name=f"c{n}") for n in range(3)]

    first = await hub.commands.claim_due(limit=2)
    rest = await hub.commands.claim_due()

    assert [c.id for c in first + rest] == [c.id for c in made]
    assert all(c.status is CommandStatus.SENT and c.sent_us for c in first + rest)
    assert await hub.commands.claim_due() == []
    assert await hub.commands.get("pump", made[0].id) == first[0]


async def test_concurrent_claims_hand_out_each_command_once(hub: Hub) -> None:
    await add_devices(hub, "pump")
    made = {(await send(hub, name=f"c{n}")).id for n in range(6)}

    claims = await asyncio.gather(*(hub.commands.claim_due() for _ in range(4)))

    ids = [c.id for claim in claims for c in claim]
    assert sorted(ids) == sorted(made)


async def test_an_expired_command_is_never_claimed(hub: Hub) -> None:
    await add_devices(hub, "pump")
    command = await send(hub)
    [overdue] = await stored(hub, "pump", created_us=now_us() - 10 * SECOND_US, ttl_s=5)

    assert await claim_at(hub, command.expires_us) == []
    [claimed] = await hub.commands.claim_due()
    assert claimed.id == command.id
    assert (await hub.commands.get("pump", overdue.id)).status is CommandStatus.EXPIRED


async def test_a_command_about_to_expire_is_left_to_expire_unsent(hub: Hub) -> None:
    await add_devices(hub, "pump")
    ago = now_us() - 60 * SECOND_US
    [short] = await stored(hub, "pump", created_us=ago + SEND_MARGIN_US // 2, ttl_s=60)
    [enough] = await stored(hub, "pump", created_us=ago + SEND_MARGIN_US + 5 * SECOND_US, ttl_s=60)

    claimed = await hub.commands.claim_due()

    assert [c.id for c in claimed] == [enough.id]
    assert (await hub.commands.get("pump", short.id)).status is CommandStatus.PENDING
    assert [c.id for c in await hub.store.commands.expire(now_us=short.expires_us)] == [short.id]


async def test_expiry_closes_pending_and_sent_commands_and_they_stay_unclaimed(hub: Hub) -> None:
    await add_devices(hub, "pump")
    sent = await send(hub, name="first")
    await hub.commands.claim_due()
    pending = await send(hub, name="second")
    later = pending.expires_us + 1

    expired = await hub.store.commands.expire(now_us=later)

    assert sorted(c.id for c in expired) == sorted([sent.id, pending.id])
    assert all(c.status is CommandStatus.EXPIRED and c.done_us == later for c in expired)
    assert await claim_at(hub, now_us()) == []


async def test_expire_due_returns_only_newly_expired_commands(hub: Hub) -> None:
    await add_devices(hub, "pump")
    fresh = await send(hub)
    overdue = await stored(hub, "pump", created_us=now_us() - 10 * SECOND_US, ttl_s=1, n=2)

    first = await hub.commands.expire_due()
    second = await hub.commands.expire_due()

    assert sorted(c.id for c in first) == sorted(c.id for c in overdue)
    assert second == []
    assert (await hub.commands.get("pump", fresh.id)).status is CommandStatus.PENDING


async def test_wait_due_wakes_at_once_when_this_process_queues(hub: Hub) -> None:
    await add_devices(hub, "pump")
    await hub.commands.wait_due(0.001)  # nothing queued: returns after the poll interval

    await send(hub)

    await asyncio.wait_for(hub.commands.wait_due(60), timeout=5)


# --- acknowledgements --------------------------------------------------------------------


@pytest.mark.parametrize(("ok", "status"), [(True, "acked"), (False, "failed")])
async def test_ack_closes_the_command_with_result_and_time(hub: Hub, ok: bool, status: str) -> None:
    await add_devices(hub, "pump")
    command = await send(hub)
    [sent] = await hub.commands.claim_due()
    before = now_us()

    done = await hub.commands.acknowledge("pump", command.id, ok=ok, result={"code": 7})

    assert done.status is CommandStatus(status)
    assert done.result == {"code": 7}
    assert done.done_us is not None
    assert before <= done.done_us <= now_us()
    assert done.sent_us == sent.sent_us
    assert await hub.commands.get("pump", command.id) == done
    # Closed is final: a later expiry leaves it as it is.
    assert await hub.store.commands.expire(now_us=command.expires_us + 1) == []
    assert await hub.commands.get("pump", command.id) == done


@pytest.mark.parametrize("ok", [True, False])
async def test_repeated_ack_is_accepted_but_a_different_one_is_refused(hub: Hub, ok: bool) -> None:
    await add_devices(hub, "pump")
    command = await send(hub)
    done = await hub.commands.acknowledge("pump", command.id, ok=ok, result="r")

    again = await hub.commands.acknowledge("pump", command.id, ok=ok, result="r")
    with pytest.raises(CommandClosed):
        await hub.commands.acknowledge("pump", command.id, ok=not ok, result="other")

    assert again == done
    assert await hub.commands.get("pump", command.id) == done


async def test_ack_of_an_unknown_or_foreign_command_is_unknown(hub: Hub) -> None:
    await add_devices(hub, "pump", "fan")
    command = await send(hub, "pump")

    with pytest.raises(UnknownCommand):
        await hub.commands.acknowledge("pump", "cmd-0000000000000000", ok=True, result=None)
    with pytest.raises(UnknownCommand):
        await hub.commands.acknowledge("fan", command.id, ok=True, result=None)

    assert (await hub.commands.get("pump", command.id)).status is CommandStatus.PENDING


async def test_ack_after_expiry_is_refused_and_the_command_stays_expired(hub: Hub) -> None:
    await add_devices(hub, "pump")
    command = await send(hub)
    await hub.commands.claim_due()
    await hub.store.commands.expire(now_us=command.expires_us + 1)
    # This one's time ran out, but nothing has marked it expired yet.
    [overdue] = await stored(hub, "pump", created_us=now_us() - 10 * SECOND_US, ttl_s=1)

    for late in (command, overdue):
        with pytest.raises(CommandClosed):
            await hub.commands.acknowledge("pump", late.id, ok=True, result="late")
        after = await hub.commands.get("pump", late.id)
        assert (after.status, after.result) == (CommandStatus.EXPIRED, None)


# --- paging ------------------------------------------------------------------------------


async def test_pages_are_newest_first_even_within_one_microsecond(hub: Hub) -> None:
    await add_devices(hub, "pump", "fan")
    early = [await send(hub, name=f"c{n}") for n in range(2)]
    # Several commands created in the same microsecond, as one bulk send writes them.
    same_us = await stored(hub, "pump", created_us=now_us(), ttl_s=60, n=4)
    _, bulk = await hub.commands.send_bulk(
        device_ids=["pump", "fan"], attributes=None, name="reboot", params={}, ttl_s=60
    )
    assert bulk[0].created_us == bulk[1].created_us
    await send(hub, "fan")
    mine = early + same_us + [c for c in bulk if c.device_id == "pump"]

    seen: list[str] = []
    before: str | None = None
    while page := await hub.commands.page("pump", limit=3, before=before):
        assert len(page) <= 3
        seen += [c.id for c in page]
        before = page[-1].id

    newest_first = sorted(mine, key=lambda c: (c.created_us, c.id), reverse=True)
    assert seen == [c.id for c in newest_first]


async def test_paging_refuses_unknown_devices_and_cursors(hub: Hub) -> None:
    await add_devices(hub, "pump", "fan")
    foreign = await send(hub, "fan")

    with pytest.raises(NotFound):
        await hub.commands.page("ghost", limit=10, before=None)
    for cursor in ("cmd-0000000000000000", foreign.id):
        with pytest.raises(InvalidInput) as caught:
            await hub.commands.page("pump", limit=10, before=cursor)
        assert [e.parameter for e in caught.value.errors] == ["before"]


# --- bulk --------------------------------------------------------------------------------


async def test_bulk_by_device_list_collapses_duplicates(hub: Hub) -> None:
    await add_devices(hub, "pump", "fan", "idle")

    batch_id, made = await hub.commands.send_bulk(
        device_ids=["pump", "fan", "pump"],
        attributes=None,
        name="reboot",
        params={"a": 1},
        ttl_s=60,
    )

    assert batch_id.startswith("bat-")
    assert sorted(c.device_id for c in made) == ["fan", "pump"]
    assert all(c.batch_id == batch_id and c.status is CommandStatus.PENDING for c in made)
    assert len({c.id for c in made}) == 2
    assert await hub.commands.batch(batch_id) == sorted(made, key=lambda c: c.device_id)
    with pytest.raises(NotFound):
        await hub.commands.batch("bat-0000000000000000")


async def test_bulk_naming_an_unknown_device_lists_it_and_queues_nothing(hub: Hub) -> None:
    await add_devices(hub, "pump")

    with pytest.raises(InvalidInput) as caught:
        await hub.commands.send_bulk(
            device_ids=["pump", "ghost"], attributes=None, name="reboot", params={}, ttl_s=60
        )

    assert pointers(caught) == ["#/devices"]
    assert "ghost" in caught.value.errors[0].detail
    assert await hub.commands.claim_due() == []


async def test_bulk_by_attributes_reaches_matching_devices_only(hub: Hub) -> None:
    await add_devices(hub, "north-1", "north-2", site="north")
    await add_devices(hub, "south-1", site="south")

    batch_id, made = await hub.commands.send_bulk(
        device_ids=None, attributes={"site": "north"}, name="reboot", params={}, ttl_s=60
    )

    assert sorted(c.device_id for c in made) == ["north-1", "north-2"]
    assert [c.device_id for c in await hub.commands.batch(batch_id)] == ["north-1", "north-2"]
    with pytest.raises(InvalidInput) as caught:
        await hub.commands.send_bulk(
            device_ids=None, attributes={"site": "east"}, name="reboot", params={}, ttl_s=60
        )
    assert pointers(caught) == ["#/attributes"]
    assert {c.device_id for c in await hub.commands.claim_due()} == {"north-1", "north-2"}


@pytest.mark.parametrize(
    ("device_ids", "attributes"), [(None, None), (["pump"], {"site": "north"})]
)
async def test_bulk_needs_exactly_one_of_devices_and_attributes(
    hub: Hub, device_ids: list[str] | None, attributes: dict[str, str] | None
) -> None:
    await add_devices(hub, "pump", site="north")

    with pytest.raises(InvalidInput) as caught:
        await hub.commands.send_bulk(
            device_ids=device_ids, attributes=attributes, name="reboot", params={}, ttl_s=60
        )

    assert pointers(caught) == ["#"]
    assert await hub.commands.claim_due() == []


# --- devices come and go -------------------------------------------------------------------


async def test_a_deleted_device_takes_its_commands_with_it(hub: Hub) -> None:
    await add_devices(hub, "pump")
    await send(hub)

    await hub.devices.delete("pump")
    await add_devices(hub, "pump")

    assert await hub.commands.page("pump", limit=10, before=None) == []
    assert await hub.commands.claim_due() == []


# --- presence: a command waits, queued, while its device is offline -------------------------
