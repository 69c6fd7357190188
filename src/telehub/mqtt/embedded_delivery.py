"""Commands on the embedded broker: marked delivered when the device's PUBACK arrives.

The bridge hands a command to the broker (sent); amqtt then writes it to the
device's connection, at once or, for a persistent session that was offline,
when the device reconnects, and awaits the device's PUBACK in
``handler.mqtt_publish``. Wrapping that call on each device's connection is
the one place the hub learns that the device's MQTT client has the command:
no external broker tells its clients' PUBACKs, so there commands stay sent
until the device answers.

A command the device takes at QoS 0 has no PUBACK, and stays sent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from telehub.core.commands import CommandService
from telehub.mqtt.topics import commands_prefix

log = logging.getLogger(__name__)

Publish = Callable[..., Awaitable[Any]]


class CommandDeliveries:
    def __init__(self, commands: CommandService) -> None:
        self._commands = commands

    def attach(self, handler: Any, device_id: str) -> None:
        """Watch what one device connection's handler publishes to the device."""
        handler.mqtt_publish = partial(
            self._publish, handler.mqtt_publish, commands_prefix(device_id), device_id
        )

    async def _publish(
        self,
        publish: Publish,
        prefix: str,
        device_id: str,
        topic: str,
        data: bytes | bytearray,
        qos: int | None,
        retain: bool,
        ack_timeout: int | None = None,
    ) -> Any:
        message = await publish(topic, data, qos, retain, ack_timeout)
        # Returned: the device acknowledged it (QoS 1 PUBACK, QoS 2 PUBCOMP).
        command_id = topic[len(prefix) :] if topic.startswith(prefix) else ""
        if qos and command_id and "/" not in command_id:
            try:
                await self._commands.delivered(device_id, command_id)
            except Exception:
                # The device has it either way; only the status stays sent.
                log.warning(
                    "could not mark command %s of %s delivered",
                    command_id,
                    device_id,
                    exc_info=True,
                )
        return message
