"""Inbound publishes in batches, each batch acknowledged only after it is committed.

gmqtt's public way to acknowledge after processing (``optimistic_acknowledgement=False``
with an async ``on_message``) runs one asyncio task per message and sends one
PUBACK per task; that alone costs about as much CPU as everything telehub does
with the message, and halves the bridge's rate. So this module takes over
gmqtt's two QoS 1/2 entry points instead: every publish that arrives in one
event-loop turn joins one batch, the batch goes to the core in one call, and
its PUBACKs (QoS 1) and PUBRECs (QoS 2) leave after the commit.

The entry points are gmqtt internals (``MqttPackageHandler``'s
``_handle_qos_{1,2}_publish_packet`` and ``_send_puback``/``_send_pubrec``).
``attach`` checks they exist, pyproject pins gmqtt below 0.9, and the
delivery tests (a bridge killed in the middle of 20,000 messages) fail if an
acknowledgement ever leaves before its commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import gmqtt

from telehub.errors import ConfigError, ShuttingDown
from telehub.mqtt.inbound import InboundMessage

log = logging.getLogger(__name__)

_ENTRY_POINTS = (
    "_handle_qos_1_publish_packet",
    "_handle_qos_2_publish_packet",
    "_send_puback",
    "_send_pubrec",
)

Process = Callable[[list[InboundMessage]], Awaitable[None]]


class BatchIntake:
    def __init__(self, process: Process) -> None:
        self._process = process
        self._batch: list[InboundMessage] = []
        self._acks: list[tuple[int, int]] = []  # (packet id, QoS) of the batch
        self._tasks: set[asyncio.Task[None]] = set()
        self._handler: Any = None
        self.messages_in_flight = 0

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
        """Wait (up to ``grace`` s) for the batches in progress to commit and be acked."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)

    async def cancel(self) -> None:
        """Abandon what is left: unacknowledged, the broker delivers it again."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    def _qos_0(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> None:
        self._take(topic, payload, properties, ack=None)

    def _qos_1(self, mid: int, payload: bytes, topic: str, properties: Any) -> None:
        self._take(topic, payload, properties, ack=(mid, 1))

    def _qos_2(self, mid: int, payload: bytes, topic: str, properties: Any) -> None:
        self._take(topic, payload, properties, ack=(mid, 2))

    def _take(
        self, topic: str | bytes, payload: bytes, properties: Any, *, ack: tuple[int, int] | None
    ) -> None:
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._start_batch)
        if isinstance(topic, bytes):  # gmqtt passes bytes when a topic is not UTF-8
            topic = topic.decode("utf-8", errors="replace")
        retained = bool(properties.get("retain")) if properties else False
        self._batch.append(InboundMessage(topic, payload, retained))
        if ack is not None:
            self._acks.append(ack)

    def _start_batch(self) -> None:
        batch, acks = self._batch, self._acks
        self._batch, self._acks = [], []
        self.messages_in_flight += len(batch)
        task = asyncio.create_task(self._run(batch, acks))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[InboundMessage], acks: list[tuple[int, int]]) -> None:
        try:
            await self._process(batch)
        except ShuttingDown:
            return  # not acknowledged: the broker delivers these again
        except Exception:
            # Unacknowledged too, so nothing is lost: delivered again on reconnect.
            log.exception("MQTT batch of %d messages failed; not acknowledged", len(batch))
            return
        finally:
            self.messages_in_flight -= len(batch)
        for mid, qos in acks:
            if qos == 1:
                self._handler._send_puback(mid)
            else:
                self._handler._send_pubrec(mid)
