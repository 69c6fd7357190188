"""Inbound publishes in batches, each message settled only after its batch is committed.

Whatever hands us publishes (gmqtt in the bridge, the embedded broker's
connections), every publish that arrives in one event-loop turn joins one
batch, the batch goes to the core in one call, and then ``settle`` is called
with the batch's acknowledgement handles and whether the batch may be
acknowledged. A batch that failed is never acknowledged: the sender (broker
or device) delivers it again, and the store keeps one copy of each reading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from telehub.errors import ShuttingDown
from telehub.mqtt.message_handler import InboundMessage

log = logging.getLogger(__name__)

Ack = TypeVar("Ack")
Process = Callable[[list[InboundMessage]], Awaitable[None]]


class BatchIntake(Generic[Ack]):
    """Collects messages into per-turn batches; ``settle(acks, ok)`` after each batch."""

    def __init__(self, process: Process, settle: Callable[[list[Ack], bool], None]) -> None:
        self._process = process
        self._settle = settle
        self._batch: list[InboundMessage] = []
        self._acks: list[Ack] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.messages_in_flight = 0

    def take(self, message: InboundMessage, ack: Ack | None) -> None:
        """Add a message to this turn's batch; ``ack`` is settled with it (None: nothing to)."""
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._start_batch)
        self._batch.append(message)
        if ack is not None:
            self._acks.append(ack)

    async def drain(self, grace: float) -> None:
        """Wait (up to ``grace`` s) for the batches in progress to commit and be settled."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)

    async def cancel(self) -> None:
        """Abandon what is left: settled as not acknowledged, so it is delivered again."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    def _start_batch(self) -> None:
        batch, acks = self._batch, self._acks
        self._batch, self._acks = [], []
        self.messages_in_flight += len(batch)
        task = asyncio.create_task(self._run(batch, acks), name="mqtt-batch")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[InboundMessage], acks: list[Ack]) -> None:
        ok = False
        try:
            await self._process(batch)
            ok = True
        except ShuttingDown:
            pass  # not acknowledged: delivered again
        except Exception:
            # Unacknowledged too, so nothing is lost: delivered again.
            log.exception("MQTT batch of %d messages failed; not acknowledged", len(batch))
        finally:
            self.messages_in_flight -= len(batch)
            self._settle(acks, ok)
