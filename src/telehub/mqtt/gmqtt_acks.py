"""The bridge's gmqtt client feeding a BatchIntake, PUBACK/PUBREC only after commit.

gmqtt's public way to acknowledge after processing (``optimistic_acknowledgement=False``
with an async ``on_message``) runs one asyncio task per message and sends one
PUBACK per task; that alone costs about as much CPU as everything telehub does
with the message, and halves the bridge's rate. So this module takes over
gmqtt's two QoS 1/2 entry points instead, and its PUBACKs (QoS 1) and PUBRECs
(QoS 2) leave when the batch is settled as committed.

The entry points are gmqtt internals (``MqttPackageHandler``'s
``_handle_qos_{1,2}_publish_packet`` and ``_send_puback``/``_send_pubrec``).
``attach`` checks they exist, pyproject pins gmqtt below 0.9, and the
delivery tests (a bridge killed in the middle of 20,000 messages) fail if an
acknowledgement ever leaves before its commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gmqtt

from telehub.errors import ConfigError
from telehub.mqtt.ack_after_commit import BatchIntake, Process
from telehub.mqtt.message_handler import InboundMessage

_ENTRY_POINTS = (
    "_handle_qos_1_publish_packet",
    "_handle_qos_2_publish_packet",
    "_send_puback",
    "_send_pubrec",
)

# Topics the bridge handles itself (its heartbeat), before any batch.
Intercept = Callable[[str], bool]


class GmqttIntake:
    def __init__(self, process: Process, *, intercept: Intercept | None = None) -> None:
        self._intake: BatchIntake[tuple[int, int]] = BatchIntake(process, self._settle)
        self._intercept = intercept
        self._handler: Any = None

    @property
    def messages_in_flight(self) -> int:
        return self._intake.messages_in_flight

    def attach(self, client: gmqtt.Client) -> None:
        """Route the client's publishes here (before connect: a persistent session's
        unacknowledged messages arrive right after CONNACK)."""
        handler = client._package_handler
        missing = [name for name in _ENTRY_POINTS if not hasattr(handler, name)]
        if missing:
            raise ConfigError(
                f"this gmqtt version lacks {', '.join(missing)}; "
                "telehub's MQTT bridge needs gmqtt 0.8"
            )
        self._handler = handler
        handler._handle_qos_1_publish_packet = self._qos_1
        handler._handle_qos_2_publish_packet = self._qos_2
        # QoS 0 still comes through on_message; a plain function is called inline.
        client.on_message = self._qos_0

    async def drain(self, grace: float) -> None:
        await self._intake.drain(grace)

    async def cancel(self) -> None:
        await self._intake.cancel()

    def _qos_0(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> None:
        self._take(topic, payload, properties, ack=None)

    def _qos_1(self, mid: int, payload: bytes, topic: str, properties: Any) -> None:
        self._take(topic, payload, properties, ack=(mid, 1))

    def _qos_2(self, mid: int, payload: bytes, topic: str, properties: Any) -> None:
        self._take(topic, payload, properties, ack=(mid, 2))

    def _take(
        self, topic: str | bytes, payload: bytes, properties: Any, *, ack: tuple[int, int] | None
    ) -> None:
        if isinstance(topic, bytes):  # gmqtt passes bytes when a topic is not UTF-8
            topic = topic.decode("utf-8", errors="replace")
        if self._intercept is not None and self._intercept(topic):
            if ack is not None:
                self._settle([ack], True)
            return
        # A broker sets the retain flag only on a replay from its retained
        # store (MQTT-3.3.1-9), never on a message passed on as it arrives.
        retained = bool(properties.get("retain")) if properties else False
        self._intake.take(InboundMessage(topic, payload, retained), ack)

    def _settle(self, acks: list[tuple[int, int]], ok: bool) -> None:
        if not ok:
            return  # unacknowledged: the broker delivers these again
        for mid, qos in acks:
            if qos == 1:
                self._handler._send_puback(mid)
            else:
                self._handler._send_pubrec(mid)
