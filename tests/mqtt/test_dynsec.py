"""Device logins and ACLs in Mosquitto's dynamic-security plugin, on a real broker.

One broker for the module (its own port, ``allow_anonymous false``, the
plugin loaded); each test uses devices of its own. Devices and the bridge
are played by the C clients ``mosquitto_pub``/``mosquitto_sub``, as a real
fleet would be, so what is checked is what the broker enforces.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from types import TracebackType

import pytest

from telehub.errors import ConfigError, InvalidInput
from telehub.mqtt.dynsec import DynsecError, DynsecProvisioner
from telehub.mqtt.dynsec_acls import device_role
from telehub.mqtt.topics import ROOT
from tests.mqtt.dynsec_broker import ADMIN, BRIDGE, WAIT, Broker, client_args, login
from tests.mqtt.support import free_port

pytestmark = pytest.mark.services


@pytest.fixture
async def dynsec(broker: Broker) -> AsyncIterator[DynsecProvisioner]:
    async with DynsecProvisioner("127.0.0.1", broker.port, *ADMIN, timeout=WAIT) as provisioner:
        await provisioner.ensure_roles()
        await provisioner.ensure_bridge(*BRIDGE)
        yield provisioner


def new_device() -> tuple[str, str]:
    return f"dev-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex


def topic(device_id: str, rest: str) -> str:
    return f"{ROOT}/{device_id}/{rest}"


def publish(broker: Broker, credentials: tuple[str, str], name: str, payload: str) -> str:
    """Publish at QoS 1 and return stderr: a refusal shows there as "Not authorized"."""
    result = subprocess.run(
        ["mosquitto_pub", *client_args(broker, credentials), "-q", "1", "-t", name, "-m", payload],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def ctrl(broker: Broker, *command: str) -> None:
    """A dynsec command as an operator would type it."""
    subprocess.run(
        [
            *("mosquitto_ctrl", "-h", "127.0.0.1", "-p", str(broker.port)),
            *("-u", ADMIN[0], "-P", ADMIN[1], "dynsec", *command),
        ],
        check=True,
        capture_output=True,
        timeout=10,
    )


class Subscriber:
    """mosquitto_sub in debug mode, line-buffered, so the SUBACK can be awaited."""

    def __init__(self, broker: Broker, credentials: tuple[str, str], *filters: str) -> None:
        self.args = [*client_args(broker, credentials), "-q", "1", "-v", "-d"]
        self.args += [arg for f in filters for arg in ("-t", f)]
        self.granted: list[int] = []

    async def __aenter__(self) -> Subscriber:
        self.process = await asyncio.create_subprocess_exec(
            *("stdbuf", "-oL", "mosquitto_sub", *self.args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        line = await self._line(lambda text: text.startswith("Subscribed"))
        self.granted = [int(code) for code in line.partition("): ")[2].split(",")]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process.returncode is None:
            self.process.terminate()
        await self.process.communicate()

    async def message(self) -> str:
        """The next message received, as "topic payload"."""
        return await self._line(lambda text: text.startswith(ROOT))

    async def kicked(self) -> str:
        """The broker's DISCONNECT line, once mosquitto_sub has exited because of it."""
        line = await self._line(lambda text: "DISCONNECT" in text)
        await asyncio.wait_for(self.process.wait(), WAIT)
        return line

    async def _line(self, wanted: Callable[[str], bool]) -> str:
        assert self.process.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.process.stdout.readline(), WAIT)
            assert raw, "mosquitto_sub exited"
            text = raw.decode().rstrip("\n")
            if wanted(text):
                return text


async def test_a_device_publishes_its_uplink_and_the_bridge_receives_it(
    broker: Broker, dynsec: DynsecProvisioner
) -> None:
    device_id, token = new_device()
    await dynsec.device_created(device_id, token)
    uplink = ["telemetry", "state", "status", "commands/c1/ack"]
    filters = [f"$share/telehub/{ROOT}/+/telemetry", f"{ROOT}/+/state"]
    filters += [f"$share/telehub/{ROOT}/+/status", f"{ROOT}/+/commands/+/ack"]
    async with Subscriber(broker, BRIDGE, *filters) as bridge:
        assert bridge.granted == [1, 1, 1, 1]
        for rest in uplink:
            assert publish(broker, (device_id, token), topic(device_id, rest), rest) == ""
        assert [await bridge.message() for _ in uplink] == [
            f"{topic(device_id, rest)} {rest}" for rest in uplink
        ]


async def test_a_device_cannot_publish_as_another_or_send_commands(
    broker: Broker, dynsec: DynsecProvisioner
) -> None:
    (device_id, token), (other_id, other_token) = new_device(), new_device()
    await dynsec.device_created(device_id, token)
    await dynsec.device_created(other_id, other_token)
    device = (device_id, token)
    async with Subscriber(broker, BRIDGE, f"{ROOT}/+/telemetry", f"{ROOT}/+/commands/+") as bridge:
        assert bridge.granted == [1, 135]  # the bridge sends commands, it does not read them
        assert "Not authorized" in publish(broker, device, topic(other_id, "telemetry"), "forged")
        assert "Not authorized" in publish(broker, device, topic(device_id, "commands/c1"), "x")
        assert "Not authorized" in publish(broker, device, topic(device_id, "other"), "x")
        publish(broker, device, topic(device_id, "telemetry"), "marker")
        # Publishes from one client arrive in order: had the forgery got
        # through, the bridge would see it before the marker.
        assert await bridge.message() == f"{topic(device_id, 'telemetry')} marker"


async def test_a_device_reads_only_its_own_commands_which_only_the_bridge_sends(
    broker: Broker, dynsec: DynsecProvisioner
) -> None:
    (device_id, token), (other_id, other_token) = new_device(), new_device()
    await dynsec.device_created(device_id, token)
    await dynsec.device_created(other_id, other_token)
    filters = [topic(device_id, "commands/#"), topic(other_id, "commands/#")]
    filters += [f"{ROOT}/+/commands/#", topic(other_id, "telemetry")]
    async with Subscriber(broker, (device_id, token), *filters) as device:
        assert device.granted == [1, 135, 135, 135]
        denied = publish(broker, (other_id, other_token), topic(device_id, "commands/c0"), "x")
        assert "Not authorized" in denied
        assert "Not authorized" in publish(broker, BRIDGE, topic(device_id, "telemetry"), "x")
        assert publish(broker, BRIDGE, topic(device_id, "commands/c1"), "reboot") == ""
        assert await device.message() == f"{topic(device_id, 'commands/c1')} reboot"


async def test_a_device_connects_only_with_its_own_id_as_client_id(
    broker: Broker, dynsec: DynsecProvisioner
) -> None:
    """Another client id would take over that client's session: the bridge's above all."""
    device_id, token = new_device()
    other_id, other_token = new_device()
    await dynsec.device_created(device_id, token)
    await dynsec.device_created(other_id, other_token)
    assert login(broker, (device_id, token)) == "ok"
    for taken in (BRIDGE[0], other_id, "mosq-1234"):
        assert "Not authorized" in login(broker, (device_id, token), client_id=taken)
    async with Subscriber(broker, BRIDGE, f"{ROOT}/+/telemetry") as bridge:
        # The bridge keeps its session: what a device publishes still reaches it.
        assert publish(broker, (other_id, other_token), topic(other_id, "telemetry"), "x") == ""
        assert await bridge.message() == f"{topic(other_id, 'telemetry')} x"


async def test_rotation_cuts_the_old_token_and_admits_the_new(
    broker: Broker, dynsec: DynsecProvisioner
) -> None:
    device_id, old = new_device()
    new = uuid.uuid4().hex
    await dynsec.device_created(device_id, old)
    async with Subscriber(broker, (device_id, old), topic(device_id, "commands/#")) as live:
        await dynsec.device_token_rotated(device_id, new)
        # 0x98: administrative action; a session on the old token does not outlive it.
        assert await live.kicked() == "Received DISCONNECT (152)"
    assert "Not authorized" in login(broker, (device_id, old))
    assert login(broker, (device_id, new)) == "ok"
    assert publish(broker, (device_id, new), topic(device_id, "telemetry"), "x") == ""


async def test_rotation_gives_a_login_to_a_device_that_had_none(
    broker: Broker, dynsec: DynsecProvisioner
) -> None:
    device_id, token = new_device()
    await dynsec.device_token_rotated(device_id, token)
    assert publish(broker, (device_id, token), topic(device_id, "telemetry"), "x") == ""


async def test_a_deleted_device_cannot_log_in_and_deleting_twice_is_fine(
    broker: Broker, dynsec: DynsecProvisioner
) -> None:
    device_id, token = new_device()
    await dynsec.device_created(device_id, token)
    assert login(broker, (device_id, token)) == "ok"
    await dynsec.device_deleted(device_id)
    assert "Not authorized" in login(broker, (device_id, token))
    await dynsec.device_deleted(device_id)
    await dynsec.device_deleted(new_device()[0])  # never existed


async def test_creating_again_sets_the_password_and_restores_the_role(
    broker: Broker, dynsec: DynsecProvisioner
) -> None:
    (device_id, first), (other_id, _) = new_device(), new_device()
    second = uuid.uuid4().hex
    await dynsec.device_created(device_id, first)
    await dynsec.device_created(device_id, first)
    assert login(broker, (device_id, first)) == "ok"
    # Someone widens the role by hand; provisioning the device again undoes it.
    role = device_role(device_id)
    ctrl(broker, "addRoleACL", role, "publishClientSend", f"{ROOT}/+/#", "allow", "20")
    forged = topic(other_id, "telemetry")
    assert publish(broker, (device_id, first), forged, "x") == ""
    await dynsec.device_created(device_id, second)
    assert "Not authorized" in login(broker, (device_id, first))
    assert "Not authorized" in publish(broker, (device_id, second), forged, "x")
    assert publish(broker, (device_id, second), topic(device_id, "telemetry"), "x") == ""


async def test_ensuring_the_bridge_again_is_harmless(
    broker: Broker, dynsec: DynsecProvisioner
) -> None:
    await dynsec.ensure_roles()
    await dynsec.ensure_bridge(*BRIDGE)
    assert login(broker, BRIDGE) == "ok"


async def test_bad_admin_credentials_are_a_config_error(broker: Broker) -> None:
    with pytest.raises(ConfigError, match="refused the dynamic-security admin login 'admin'"):
        async with DynsecProvisioner("127.0.0.1", broker.port, ADMIN[0], "wrong", timeout=WAIT):
            pass


async def test_a_login_without_the_admin_role_is_a_config_error(
    broker: Broker, dynsec: DynsecProvisioner
) -> None:
    with pytest.raises(ConfigError, match="lacks the dynamic-security admin role"):
        async with DynsecProvisioner("127.0.0.1", broker.port, *BRIDGE, timeout=WAIT):
            pass


async def test_an_unreachable_broker_is_a_dynsec_error() -> None:
    with pytest.raises(DynsecError, match="unreachable"):
        async with DynsecProvisioner("127.0.0.1", free_port(), *ADMIN, timeout=WAIT):
            pass


async def test_a_device_id_with_wildcards_never_reaches_an_acl(
    dynsec: DynsecProvisioner,
) -> None:
    for bad in ("+", "a/#", "a/b"):
        with pytest.raises(InvalidInput):
            await dynsec.device_created(bad, "token")
