"""The gmqtt internals the MQTT bridge takes over are still there, as it uses them.

telehub/mqtt/gmqtt_acks.py replaces, on each client's package handler, the
two methods gmqtt calls for an inbound QoS 1 and QoS 2 PUBLISH, and sends the
PUBACK/PUBREC itself through two more private methods once the batch is
committed; telehub/mqtt/bridge.py and dynsec.py read the CONNACK code off
MQTTConnectError. A gmqtt release that renames, reshapes or bypasses them
would silently acknowledge before the commit (or never); this fails first,
naming the module to revisit. The delivery tests (test_delivery.py) check the
whole rule against a real broker.
"""

from __future__ import annotations

import asyncio
import inspect
import struct

import gmqtt
import gmqtt.client
import gmqtt.mqtt.handler
from gmqtt.mqtt.constants import MQTTCommands
from gmqtt.mqtt.handler import MQTTConnectError, MqttPackageHandler
from gmqtt.mqtt.package import Package

from telehub.errors import ShuttingDown
from telehub.mqtt import gmqtt_acks
from telehub.mqtt.gmqtt_acks import GmqttIntake
from telehub.mqtt.gmqtt_support import LOGIN_REFUSED
from telehub.mqtt.message_handler import InboundMessage
from tests.support.pins import assert_pinned

INTAKE = "telehub/mqtt/gmqtt_acks.py"


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_gmqtt_is_the_release_the_intake_was_written_for() -> None:
    assert_pinned("gmqtt", "0.8", revisit=f"{INTAKE}, telehub/mqtt/bridge.py and dynsec.py")


def test_each_client_has_one_package_handler_for_its_whole_life() -> None:
    """``attach`` replaces methods on it once, before connect; a reconnect must keep it."""
    client = gmqtt.Client("internals")
    assert isinstance(client._package_handler, MqttPackageHandler), f"revisit {INTAKE}"
    assigned = inspect.getsource(gmqtt.client).count("self._package_handler = ")
    assert assigned == 1, f"gmqtt now replaces a client's package handler: revisit {INTAKE}"
    assert "self._package_handler = MqttPackageHandler(" in inspect.getsource(
        gmqtt.Client.__init__
    ), f"revisit {INTAKE}"


def test_the_entry_points_taken_over_keep_their_shape() -> None:
    assert gmqtt_acks._ENTRY_POINTS == (
        "_handle_qos_1_publish_packet",
        "_handle_qos_2_publish_packet",
        "_send_puback",
        "_send_pubrec",
    )
    for name in ("_handle_qos_1_publish_packet", "_handle_qos_2_publish_packet"):
        assert parameters(getattr(MqttPackageHandler, name)) == [
            "self",
            "mid",
            "packet",
            "print_topic",
            "properties",
        ], f"{name} changed: revisit {INTAKE} (GmqttIntake._qos_1/_qos_2)"
    for name, command in (("_send_puback", "PUBACK"), ("_send_pubrec", "PUBREC")):
        method = getattr(MqttPackageHandler, name)
        assert parameters(method) == ["self", "mid", "reason_code"], f"revisit {INTAKE}"
        assert f"MQTTCommands.{command}, mid" in inspect.getsource(method), f"revisit {INTAKE}"


def test_a_publish_reaches_the_entry_points_through_the_instance() -> None:
    """Replaced on the instance, they win only if looked up on ``self`` at each PUBLISH."""
    source = inspect.getsource(MqttPackageHandler._handle_publish_packet)
    for qos in (1, 2):
        call = f"self._handle_qos_{qos}_publish_packet(mid, packet, print_topic, properties)"
        assert call in source, f"gmqtt dispatches QoS {qos} otherwise: revisit {INTAKE}"
    assert 'properties["retain"] = retain' in source, f"revisit {INTAKE} (retained flag)"


def test_nothing_else_acknowledges_an_inbound_publish() -> None:
    """Only the replaced entry points (and the callback they alone register) send
    PUBACK/PUBREC: anything else would acknowledge before the commit."""
    senders = {
        name
        for name, member in inspect.getmembers(MqttPackageHandler, inspect.isfunction)
        if name not in ("_send_puback", "_send_pubrec")
        and (
            "_send_puback(" in inspect.getsource(member)
            or "_send_pubrec(" in inspect.getsource(member)
        )
    }
    assert senders == {
        "_handle_qos_1_publish_packet",
        "_handle_qos_2_publish_packet",
        "_MqttPackageHandler__handle_publish_callback",
    }, f"gmqtt acknowledges from {sorted(senders)}: revisit {INTAKE}"
    handler_source = inspect.getsource(gmqtt.mqtt.handler)
    assert handler_source.count("__handle_publish_callback") == 3, f"revisit {INTAKE}"


def test_a_refused_login_carries_its_connack_code() -> None:
    assert gmqtt.mqtt.handler.MQTTConnectError is MQTTConnectError
    for code in LOGIN_REFUSED:
        assert MQTTConnectError(code)._code == code, (
            "revisit telehub/mqtt/bridge.py and dynsec.py (exc._code)"
        )
    assert "MQTTConnectError(result)" in inspect.getsource(
        MqttPackageHandler._handle_connack_packet
    ), "revisit telehub/mqtt/bridge.py and dynsec.py (exc._code)"


def publish(
    qos: int, topic: bytes, payload: bytes, *, mid: int = 0, retain: bool = False
) -> Package:
    """A PUBLISH as gmqtt's connection hands it to the handler (MQTT 5, no properties)."""
    header = MQTTCommands.PUBLISH.value | qos << 1 | int(retain)
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    return Package(header, body + b"\x00" + payload)


async def test_publishes_of_each_qos_reach_the_intake_with_topic_payload_and_retain() -> None:
    batches: list[list[InboundMessage]] = []

    async def process(batch: list[InboundMessage]) -> None:
        batches.append(batch)
        # Not acknowledged, so nothing is sent on this unconnected client.
        raise ShuttingDown("test", retry_after=1)

    client = gmqtt.Client("internals", clean_session=False, optimistic_acknowledgement=False)
    intake = GmqttIntake(process)
    intake.attach(client)
    handler = client._package_handler
    handler(publish(0, b"t/zero", b"0"))
    handler(publish(1, b"t/one", b"1", mid=7, retain=True))
    handler(publish(2, b"t/two", b"2", mid=8))
    await asyncio.sleep(0)  # the batch of this turn starts on the next
    await intake.drain(5)
    assert batches == [
        [
            InboundMessage("t/zero", b"0"),
            InboundMessage("t/one", b"1", retained=True),
            InboundMessage("t/two", b"2"),
        ]
    ], f"gmqtt no longer hands publishes to the intake as it expects: revisit {INTAKE}"
    assert intake.messages_in_flight == 0
