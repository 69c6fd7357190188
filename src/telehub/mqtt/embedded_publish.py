"""Devices' publishes on the embedded broker, taken straight to the core.

amqtt acknowledges a QoS 1 publish on receipt and relays it to subscribers
later; when the publisher disconnects first, what was not yet relayed is
dropped (a 20,000-message burst from ``mosquitto_pub -l`` stored ~10,000),
although every message got its PUBACK. So on the embedded broker a device's
publish never takes that second hop to the bridge: it joins a batch for the
core right here, and its PUBACK (QoS 1) or PUBREC (QoS 2) leaves only once
the batch is committed. A connection lost before that gets no
acknowledgement, and the device sends the message again.

QoS 2 is handled as the spec's receiver "method B" (4.3.3): the packet id is
remembered from the commit until PUBREL, so a resent PUBLISH is answered with
PUBREC without being stored twice.

A retained flag is not honoured here: nothing subscribes to device topics on
this broker, and the message itself is stored as it arrives, once.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from amqtt.contexts import Action
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.pubrec import PubrecPacket

from telehub.mqtt.embedded_access import EmbeddedAccess
from telehub.mqtt.inbound import InboundMessage, MqttInbound
from telehub.mqtt.intake import BatchIntake
from telehub.mqtt.packet_reader import PacketReader

# Packet ids a client may have between PUBREC and PUBREL (all of them, 16 bits).
_MAX_QOS2_IDS = 65_535


class DevicePublishes:
    def __init__(self, inbound: MqttInbound, access: EmbeddedAccess) -> None:
        self._intake: BatchIntake[asyncio.Future[bool]] = BatchIntake(inbound.handle_batch, _settle)
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

    async def drain(self, grace: float) -> None:
        await self._intake.drain(grace)

    async def cancel(self) -> None:
        await self._intake.cancel()

    async def _publish(
        self, handler: Any, reader: PacketReader, device_id: str, packet: Any
    ) -> None:
        qos, packet_id, topic = packet.qos, packet.packet_id, packet.topic_name
        answered = self._qos2.get(device_id)
        if qos == 2 and answered is not None and packet_id in answered:
            await handler._send_packet(PubrecPacket.build(packet_id))  # a resend: stored already
            return
        reader.hold()
        try:
            if await self._access.allowed(device_id, topic, Action.PUBLISH):
                done = asyncio.get_running_loop().create_future()
                self._intake.take(InboundMessage(topic, packet.data or b""), done)
                if not await done:
                    return  # not committed: no acknowledgement, the device sends it again
            # A refused topic was recorded; acknowledging it ends the device's retries.
        finally:
            reader.release()
        if qos == 1:
            await handler._send_packet(PubackPacket.build(packet_id))
        elif qos == 2:
            ids = self._qos2.setdefault(device_id, set())
            if len(ids) < _MAX_QOS2_IDS:
                ids.add(packet_id)
            await handler._send_packet(PubrecPacket.build(packet_id))

    async def _pubrel(self, handler: Any, device_id: str, pubrel: Any) -> None:
        answered = self._qos2.get(device_id)
        if answered is not None:
            answered.discard(pubrel.packet_id)
        await handler._send_packet(PubcompPacket.build(pubrel.packet_id))


def _settle(waiting: list[asyncio.Future[bool]], committed: bool) -> None:
    for future in waiting:
        if not future.done():  # cancelled when its connection went away
            future.set_result(committed)
