"""Devices' publishes on the embedded broker, taken straight to the core.

amqtt acknowledges a QoS 1 publish on receipt and relays it to subscribers
later; when the publisher disconnects first, what was not yet relayed is
dropped (a 20,000-message burst from ``mosquitto_pub -l`` stored ~10,000),
although every message got its PUBACK. So on the embedded broker a device's
publish never takes that second hop to the bridge: it joins a batch for the
core right here, and its PUBACK (QoS 1) or PUBREC (QoS 2) leaves only once
the batch is committed. A connection lost before that gets no
acknowledgement, and the device sends the message again.

The acknowledgements of one batch leave together, one write per connection:
a write per 4-byte PUBACK took a quarter of the broker's time.

QoS 2 is handled as the spec's receiver "method B" (4.3.3): the packet id is
remembered from the commit until PUBREL, so a resent PUBLISH is answered with
PUBREC without being stored twice.

A retained flag is not honoured here: nothing subscribes to device topics on
this broker, and the message itself is stored as it arrives, once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from typing import Any

from amqtt.contexts import Action
from amqtt.mqtt.pubcomp import PubcompPacket

from telehub.mqtt.ack_after_commit import BatchIntake
from telehub.mqtt.embedded_access import EmbeddedAccess
from telehub.mqtt.message_handler import InboundMessage, MqttInbound
from telehub.mqtt.packet_reader import PacketReader

# Packet ids a client may have between PUBREC and PUBREL (all of them, 16 bits).
_MAX_QOS2_IDS = 65_535
# The fixed headers of PUBACK and PUBREC (MQTT 3.1.1, 3.4 and 3.5): type, length 2.
_ACK_HEADER = {1: b"\x40\x02", 2: b"\x50\x02"}


@dataclass(frozen=True, slots=True)
class _Publish:
    """One publish waiting for its batch: whom to answer, and how."""

    handler: Any
    reader: PacketReader
    device_id: str
    qos: int
    packet_id: int


class DevicePublishes:
    def __init__(self, inbound: MqttInbound, access: EmbeddedAccess) -> None:
        self._intake: BatchIntake[_Publish] = BatchIntake(inbound.handle_batch, self._settle)
        self._access = access
        # client id → QoS 2 packet ids committed and answered with PUBREC, awaiting PUBREL.
        self._qos2: dict[str, set[int]] = {}

    @property
    def messages_in_flight(self) -> int:
        return self._intake.messages_in_flight

    def attach(self, handler: Any, reader: PacketReader, device_id: str, *, clean: bool) -> None:
        """Take over the PUBLISH and PUBREL handling of one device connection's handler."""
        if clean:
            self._qos2.pop(device_id, None)
        handler.handle_publish = partial(self._publish, handler, reader, device_id)
        handler.handle_pubrel = partial(self._pubrel, handler, device_id)

    def forget(self, device_id: str) -> None:
        """The device is deleted: a device made later with its id starts afresh."""
        self._qos2.pop(device_id, None)

    async def drain(self, grace: float) -> None:
        await self._intake.drain(grace)

    async def cancel(self) -> None:
        await self._intake.cancel()

    async def _publish(
        self, handler: Any, reader: PacketReader, device_id: str, packet: Any
    ) -> None:
        if reader.ended:
            return  # read before the connection was ended (its token revoked): not taken
        qos, packet_id, topic = packet.qos, packet.packet_id, packet.topic_name
        waiting = _Publish(handler, reader, device_id, qos, packet_id or 0)
        answered = self._qos2.get(device_id)
        if qos == 2 and answered is not None and packet_id in answered:
            _write(handler, [waiting])  # a resend of one stored already: PUBREC again
            return
        if not await self._access.allowed(device_id, topic, Action.PUBLISH):
            # Recorded by allowed(); acknowledging it ends the device's retries.
            _write(handler, [waiting])
            return
        reader.hold()  # released when its batch is settled
        self._intake.take(InboundMessage(topic, packet.data or b""), waiting)

    def _settle(self, batch: list[_Publish], committed: bool) -> None:
        by_connection: defaultdict[int, list[_Publish]] = defaultdict(list)
        for publish in batch:
            publish.reader.release()
            if committed:
                by_connection[id(publish.handler)].append(publish)
        for publishes in by_connection.values():
            for publish in publishes:
                if publish.qos == 2:
                    ids = self._qos2.setdefault(publish.device_id, set())
                    if len(ids) < _MAX_QOS2_IDS:
                        ids.add(publish.packet_id)
            _write(publishes[0].handler, publishes)
        # Not committed: no acknowledgement; the device sends them again.

    async def _pubrel(self, handler: Any, device_id: str, pubrel: Any) -> None:
        answered = self._qos2.get(device_id)
        if answered is not None:
            answered.discard(pubrel.packet_id)
        await handler._send_packet(PubcompPacket.build(pubrel.packet_id))


def _write(handler: Any, publishes: list[_Publish]) -> None:
    """The PUBACKs/PUBRECs of one connection's publishes, in one write (QoS 0: none)."""
    data = b"".join(_ACK_HEADER[p.qos] + p.packet_id.to_bytes(2, "big") for p in publishes if p.qos)
    writer = handler.writer
    if data and writer is not None:  # None: the connection ended meanwhile
        writer.write(data)
