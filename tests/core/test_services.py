"""Core services over real storage: devices, credentials, who may write, the rejected log."""

from __future__ import annotations

import re
from typing import Any

import pytest

from telehub.core.auth import require
from telehub.core.ports import SeriesRange
from telehub.domain.devices import Principal, Scope
from telehub.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
)
from telehub.hub import Hub, open_hub
from tests.core.service_support import WRITER, query, readings

# --- devices ---------------------------------------------------------------------------


async def test_create_generates_an_id_and_a_device_token(hub: Hub) -> None:
    device, secret = await hub.devices.create(device_id=None, name=None, attributes={})
    assert re.fullmatch(r"dev-[0-9a-f]{8}", device.id)
    assert device.name == device.id
    assert secret.startswith("thd_")
    assert await hub.devices.get(device.id) == device
    assert await hub.auth.authenticate(secret) == Principal(scope=None, device_id=device.id)


async def test_create_with_a_taken_id_conflicts(hub: Hub) -> None:
    await hub.devices.create(device_id="boiler", name="Boiler", attributes={})
    with pytest.raises(Conflict):
        await hub.devices.create(device_id="boiler", name="Other", attributes={})
    assert (await hub.devices.get("boiler")).name == "Boiler"


async def test_get_update_and_delete(hub: Hub) -> None:
    await hub.devices.create(device_id="pump", name="Pump", attributes={"floor": 1})
    renamed = await hub.devices.update("pump", name="Main pump", attributes=None)
    assert (renamed.name, renamed.attributes) == ("Main pump", {"floor": 1})
    moved = await hub.devices.update("pump", name=None, attributes={"floor": 2, "zone": "b"})
    assert (moved.name, moved.attributes) == ("Main pump", {"floor": 2, "zone": "b"})
    assert await hub.devices.get("pump") == moved

    await hub.devices.delete("pump")
    with pytest.raises(NotFound):
        await hub.devices.get("pump")
    with pytest.raises(NotFound):
        await hub.devices.delete("pump")
    with pytest.raises(NotFound):
        await hub.devices.update("pump", name="x", attributes=None)


async def test_delete_removes_readings_state_and_token(hub: Hub) -> None:
    _, secret = await hub.devices.create(device_id="meter", name=None, attributes={})
    telemetry = readings("meter", "kwh", {1: 1.0, 2: 2.0})
    await hub.ingest.submit(WRITER, telemetry, transport="test", payload=b"")
    await hub.devices.delete("meter")
    with pytest.raises(Unauthenticated):
        await hub.auth.authenticate(secret)

    # A new device under the same id starts empty.
    await hub.devices.create(device_id="meter", name=None, attributes={})
    assert await hub.telemetry.query("meter", query()) == {}
    latest = await hub.telemetry.latest("meter")
    assert (latest.readings, latest.state) == ({}, {})
    # ...and the old readings are not merely hidden: resending them stores them anew.
    assert (await hub.ingest.submit(WRITER, telemetry, transport="test", payload=b"")).accepted == 2


async def test_paging_with_after_cursor(hub: Hub) -> None:
    for name in ["e", "c", "a", "d", "b"]:
        await hub.devices.create(device_id=f"dev-{name}", name=None, attributes={})
    seen: list[str] = []
    after: str | None = None
    while page := await hub.devices.page(limit=2, after=after, attributes={}):
        assert len(page) <= 2
        seen += [d.id for d in page]
        after = page[-1].id
    assert seen == ["dev-a", "dev-b", "dev-c", "dev-d", "dev-e"]


async def filtered(hub: Hub, **attributes: str) -> list[str]:
    return [d.id for d in await hub.devices.page(limit=10, after=None, attributes=attributes)]


async def test_attribute_filter_matches_text_form_of_any_value(hub: Hub) -> None:
    await hub.devices.create(device_id="num", name=None, attributes={"floor": 3, "kind": "pump"})
    await hub.devices.create(device_id="text", name=None, attributes={"floor": "3"})
    await hub.devices.create(device_id="other", name=None, attributes={"floor": 4})
    await hub.devices.create(device_id="none", name=None, attributes={})
    assert await filtered(hub, floor="3") == ["num", "text"]
    assert await filtered(hub, floor="3", kind="pump") == ["num"]
    assert await filtered(hub, floor="5") == []


async def test_attribute_filter_matches_boolean_by_json_text(hub: Hub) -> None:
    await hub.devices.create(device_id="on", name=None, attributes={"active": True})
    await hub.devices.create(device_id="off", name=None, attributes={"active": False})
    await hub.devices.create(device_id="one", name=None, attributes={"active": 1})
    await hub.devices.create(device_id="word", name=None, attributes={"active": "true"})
    assert await filtered(hub, active="true") == ["on", "word"]
    assert await filtered(hub, active="1") == ["one"]


async def test_attribute_filter_handles_quotes_and_unicode(hub: Hub) -> None:
    await hub.devices.create(
        device_id="q", name=None, attributes={"we ird.x": 'sa"y', "café": "crème"}
    )
    assert await filtered(hub, **{"we ird.x": 'sa"y'}) == ["q"]
    assert await filtered(hub, **{"café": "crème"}) == ["q"]
    with pytest.raises(InvalidInput) as caught:
        await filtered(hub, **{'we"ird': "x"})
    assert [e.parameter for e in caught.value.errors] == ["attribute"]


# --- credentials -----------------------------------------------------------------------


async def test_rotation_revokes_the_old_device_token(hub: Hub) -> None:
    _, old = await hub.devices.create(device_id="gate", name=None, attributes={})
    assert (await hub.auth.authenticate(old)).device_id == "gate"
    new = await hub.devices.rotate_token("gate")
    assert new != old
    with pytest.raises(Unauthenticated):
        await hub.auth.authenticate(old)
    assert await hub.auth.authenticate(new) == Principal(scope=None, device_id="gate")
    with pytest.raises(NotFound):
        await hub.devices.rotate_token("no-such-device")


@pytest.mark.parametrize("secret", [None, "", "thd_unknown", "tha_unknown", "plain-text"])
async def test_missing_or_unknown_secret_is_unauthenticated(hub: Hub, secret: str | None) -> None:
    with pytest.raises(Unauthenticated):
        await hub.auth.authenticate(secret)


def test_scopes_include_the_ones_below() -> None:
    order = [Scope.READ, Scope.WRITE, Scope.ADMIN]
    for i, held in enumerate(order):
        for j, needed in enumerate(order):
            assert held.allows(needed) is (i >= j), (held, needed)


async def test_api_token_scope_is_enforced(hub: Hub) -> None:
    _, secret = await hub.tokens.create(name="dashboard", scope=Scope.READ)
    principal = await hub.auth.authenticate(secret)
    assert principal.scope is Scope.READ
    require(principal, Scope.READ)
    with pytest.raises(Forbidden):
        require(principal, Scope.WRITE)
    with pytest.raises(Forbidden):
        require(principal, Scope.ADMIN)
    require(Principal(scope=Scope.ADMIN), Scope.WRITE)
    with pytest.raises(Forbidden):  # a device token holds no API scope at all
        require(Principal(scope=None, device_id="gate"), Scope.READ)


async def test_deleted_api_token_stops_working(hub: Hub) -> None:
    token, secret = await hub.tokens.create(name="ci", scope=Scope.WRITE)
    assert secret.startswith("tha_")
    assert [t.id for t in await hub.tokens.list()] == [token.id]
    await hub.tokens.delete(token.id)
    with pytest.raises(Unauthenticated):
        await hub.auth.authenticate(secret)
    assert await hub.tokens.list() == []
    with pytest.raises(NotFound):
        await hub.tokens.delete(token.id)


async def test_bootstrap_makes_one_admin_token_only_once(hub: Hub) -> None:
    await hub.tokens.create(name="reader", scope=Scope.READ)  # not an admin: still bootstraps
    secret = await hub.tokens.bootstrap()
    assert secret is not None
    assert (await hub.auth.authenticate(secret)).scope is Scope.ADMIN
    assert await hub.tokens.bootstrap() is None
    assert sorted(t.scope for t in await hub.tokens.list()) == [Scope.ADMIN, Scope.READ]


async def test_a_bootstrap_token_never_shown_is_lost_until_shown_or_another_admin(
    hub: Hub,
) -> None:
    assert not await hub.tokens.bootstrap_lost()  # no admin token at all: bootstrap makes one
    secret = await hub.tokens.bootstrap()
    assert secret is not None
    assert await hub.tokens.bootstrap_lost()  # a start that failed before showing it

    await hub.tokens.bootstrap_shown()
    assert not await hub.tokens.bootstrap_lost()
    assert [t.name for t in await hub.tokens.list()] == ["bootstrap"]
    assert (await hub.auth.authenticate(secret)).scope is Scope.ADMIN


async def test_another_admin_token_means_the_unshown_bootstrap_one_is_not_missed(
    hub: Hub,
) -> None:
    await hub.tokens.bootstrap()
    await hub.tokens.create(name="ops", scope=Scope.ADMIN)

    assert not await hub.tokens.bootstrap_lost()


# --- who may write ---------------------------------------------------------------------


async def test_device_may_write_only_itself(hub: Hub) -> None:
    _, secret = await hub.devices.create(device_id="a", name=None, attributes={})
    await hub.devices.create(device_id="b", name=None, attributes={})
    principal = await hub.auth.authenticate(secret)
    assert (
        await hub.ingest.submit(
            principal, readings("a", "t", {1: 1.0}), transport="test", payload=b""
        )
    ).accepted == 1
    assert (await hub.devices.get("a")).last_seen_us is not None
    with pytest.raises(Forbidden):
        await hub.ingest.submit(
            principal, readings("b", "t", {1: 1.0}), transport="test", payload=b""
        )
    assert await hub.telemetry.query("b", query()) == {}
    assert (await hub.devices.get("b")).last_seen_us is None


async def test_api_token_writes_need_write_scope_and_a_known_device(hub: Hub) -> None:
    await hub.devices.create(device_id="a", name=None, attributes={})
    with pytest.raises(Forbidden):
        await hub.ingest.submit(
            Principal(scope=Scope.READ), readings("a", "t", {1: 1.0}), transport="test", payload=b""
        )
    with pytest.raises(NotFound):
        await hub.ingest.submit(
            WRITER, readings("ghost", "t", {1: 1.0}), transport="test", payload=b""
        )
    for device_id in ["a", "ghost"]:
        stored = await hub.store.readings.points(SeriesRange(device_id, "t", 0, 2**62, 10))
        assert stored == []


# --- rejected log ----------------------------------------------------------------------


def invalid(detail: str) -> InvalidInput:
    return InvalidInput(detail, [FieldError(detail="must be finite", pointer="#/values/x")])


async def test_rejected_inputs_are_listed_newest_first(hub: Hub) -> None:
    await hub.rejected.record(
        transport="http", device_id="a", error=invalid("first"), payload=b'{"x": 1}'
    )
    too_big = PayloadTooLarge("second", [FieldError(detail="too many", pointer="#")])
    await hub.rejected.record(
        transport="mqtt", device_id="b", error=too_big, payload=b"\xff" + b"y" * 2000
    )
    [second, first] = await hub.rejected.recent(limit=10, before_id=None, device_id=None)
    assert (first.transport, first.device_id, first.reason) == ("http", "a", "invalid-input")
    assert first.detail == "first: #/values/x: must be finite"
    assert first.excerpt == '{"x": 1}'
    assert (second.reason, second.device_id) == ("payload-too-large", "b")
    assert len(second.excerpt) == 512  # bounded, and bad UTF-8 is replaced, not refused
    assert second.excerpt.startswith("\ufffd")
    assert second.id > first.id

    only_a = await hub.rejected.recent(limit=10, before_id=None, device_id="a")
    assert [r.id for r in only_a] == [first.id]
    older = await hub.rejected.recent(limit=10, before_id=second.id, device_id=None)
    assert [r.id for r in older] == [first.id]
    counted = hub.metrics.registry.get_sample_value(
        "telehub_rejected_total", {"transport": "mqtt", "reason": "payload-too-large"}
    )
    assert counted == 1


async def test_rejected_log_is_bounded_and_keeps_the_newest(make_settings: Any) -> None:
    keep = 30
    async with open_hub(make_settings(rejected_keep=keep)) as hub:
        for n in range(250):
            await hub.rejected.record(
                transport="http", device_id=None, error=invalid(f"n={n}"), payload=b"{}"
            )
            # At every moment the newest `keep` are there, and little more.
            assert min(n + 1, keep) <= await hub.store.rejected.count() <= keep + 100
        newest = await hub.rejected.recent(limit=keep, before_id=None, device_id=None)
        assert [r.detail.split(":")[0] for r in newest] == [f"n={n}" for n in range(249, 219, -1)]
