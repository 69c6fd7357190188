"""The ``Revoked`` bus message: its wire form, its channel, what it ends, and a
rotation's news arriving after a session of the new token opened (as on a process
the bus reaches late): that session stays."""

from __future__ import annotations

import orjson
import pytest

from telehub.bus import Channel, codec
from telehub.domain.devices import Principal, Scope, fingerprint, hash_secret
from telehub.domain.live import CredentialKind, Revoked
from telehub.hub import Hub
from tests.revocation.mqtt_support import BAD_LOGIN, Wires, device, disconnected, published
from tests.services.bus_support import buses, receive

TOKEN = CredentialKind.TOKEN
DEVICE = CredentialKind.DEVICE


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (Revoked(TOKEN, "7f3a9c0d1e2b4a56"), ["token", "7f3a9c0d1e2b4a56", None]),
        (Revoked(DEVICE, "dev-1"), ["device", "dev-1", None]),
        (
            Revoked(DEVICE, "dev-1", keep="0123456789abcdef"),
            ["device", "dev-1", "0123456789abcdef"],
        ),
    ],
)
def test_the_wire_form_is_one_array_and_round_trips(message: Revoked, wire: list[object]) -> None:
    data = codec.encode(message)
    assert orjson.loads(data) == {"x": wire}
    assert codec.decode(data) == message


@pytest.mark.parametrize(
    "body",
    [{"x": ["session", "a", None]}, {"x": ["token", 7, None]}, {"x": ["token", "a"]}, {"x": "a"}],
)
def test_a_malformed_revocation_is_refused(body: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the codec's one error type
        codec.decode(orjson.dumps(body))


def test_what_a_revocation_ends() -> None:
    old, new = hash_secret("thd_old"), hash_secret("thd_new")
    reader = Principal(scope=Scope.READ, token_id="t1")
    old_device = Principal(scope=None, device_id="dev-1", credential=old)
    new_device = Principal(scope=None, device_id="dev-1", credential=new)
    neighbour = Principal(scope=None, device_id="dev-2", credential=old)

    assert Revoked(TOKEN, "t1").ends(reader)
    assert not Revoked(TOKEN, "t2").ends(reader)
    assert not Revoked(TOKEN, "dev-1").ends(old_device)

    deleted = Revoked(DEVICE, "dev-1")
    assert deleted.ends(old_device)
    assert deleted.ends(new_device)
    assert not deleted.ends(neighbour)
    assert not deleted.ends(reader)

    rotated = Revoked(DEVICE, "dev-1", keep=fingerprint(new))
    assert rotated.ends(old_device)
    assert not rotated.ends(new_device)
    assert not rotated.ends(neighbour)


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.services)])
async def test_a_revocation_reaches_every_process_on_its_own_channel(kind: str) -> None:
    async with buses(kind) as opener:
        here = await opener()
        # Two Redis buses are two processes; the memory bus is one process only.
        there = await opener() if kind == "redis" else here
        async with (
            there.bus.subscribe([Channel.REVOCATIONS]) as revocations,
            there.bus.subscribe([Channel.READINGS, Channel.EVENTS]) as live,
        ):
            sent = Revoked(DEVICE, "dev-1", keep="0123456789abcdef")
            here.bus.publish(sent)
            assert await receive(revocations, 1) == [sent]
            assert live.take() is None


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_rotations_late_news_spares_the_new_tokens_session(
    broker: Hub, wires: Wires
) -> None:
    hub = broker
    token = await device(hub, "sensor-1")
    doomed = await wires.connected("sensor-1", token)
    async with hub.bus.subscribe([Channel.REVOCATIONS]) as heard:
        new_token = await hub.devices.rotate_token("sensor-1")
        [news] = await receive(heard, 1)
    await disconnected(doomed)

    renewed = await wires.connected("sensor-1", new_token)
    assert isinstance(news, Revoked)
    assert hub.auth.revoked(news) == 0  # the same news again, later: nothing of it ends
    await published(renewed, "sensor-1", 1)
    old = await wires.open()
    assert await old.login("sensor-1", "sensor-1", token) == BAD_LOGIN
