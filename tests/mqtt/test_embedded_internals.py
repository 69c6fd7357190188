"""The amqtt internals the embedded broker overrides are still there, as it uses them.

telehub/mqtt/embedded.py, embedded_publish.py and packet_reader.py replace a
few of amqtt's private methods (to admit a login before any session changes,
to acknowledge a device's publish after its commit, to frame the stream).
An amqtt release that renames or reshapes them would silently bring back the
losses those overrides fix; this fails first, naming what changed.
"""

from __future__ import annotations

import inspect

import amqtt
from amqtt.broker import Broker
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.protocol.handler import ProtocolHandler


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_amqtt_is_the_release_the_overrides_were_written_for() -> None:
    assert amqtt.__version__.startswith("0.12."), amqtt.__version__


def test_the_broker_methods_overridden_keep_their_shape() -> None:
    assert parameters(Broker._initialize_client_session) == [
        "self",
        "reader",
        "writer",
        "remote_address",
        "remote_port",
    ]
    assert parameters(Broker._authenticate) == ["self", "session", "_"]
    assert parameters(Broker._publish_retained_messages_for_subscription) == [
        "self",
        "subscription",
        "session",
    ]
    assert parameters(Broker.stream_connected) == ["self", "reader", "writer", "listener_name"]
    source = inspect.getsource(Broker._client_connected)
    # Our session initialisation is what it calls, with our reader adapter.
    assert "self._initialize_client_session(reader, writer" in source
    assert "await self._handle_client_session(" in source
    assert "self._authenticate(" in inspect.getsource(Broker._handle_client_session)
    assert callable(Broker._delete_session)


def test_the_handler_dispatches_publish_and_pubrel_through_its_own_methods() -> None:
    """The embedded broker replaces handle_publish/handle_pubrel on a device's handler."""
    loop_source = inspect.getsource(ProtocolHandler._reader_loop)
    assert "self.handle_publish(packet)" in loop_source
    assert "self.handle_pubrel(packet)" in loop_source
    assert "MQTTFixedHeader.from_stream(self.reader)" in loop_source
    assert parameters(BrokerProtocolHandler.init_from_connect) == [
        "reader",
        "writer",
        "plugins_manager",
        "loop",
    ]
    assert parameters(ProtocolHandler._send_packet) == ["self", "packet"]


def test_commands_reach_a_device_through_its_handler_s_mqtt_publish() -> None:
    """embedded_delivery.py wraps a device handler's mqtt_publish to see its PUBACK."""
    assert parameters(ProtocolHandler.mqtt_publish) == [
        "self",
        "topic",
        "data",
        "qos",
        "retain",
        "ack_timeout",
    ]
    # Live and from a stored session alike, the broker calls it on the handler.
    assert "handler.mqtt_publish(" in inspect.getsource(Broker._run_broadcast)
    assert "handler.mqtt_publish(" in inspect.getsource(Broker._publish_session_retained_messages)
    # It returns once the receiver acknowledged (QoS 1 PUBACK, QoS 2 PUBCOMP).
    assert "_handle_message_flow(message)" in inspect.getsource(ProtocolHandler.mqtt_publish)
