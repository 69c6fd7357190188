"""The in-memory bus: one process, delivery is a function call."""

from __future__ import annotations

from telehub.bus.base import Bus
from telehub.domain.live import BusMessage


class MemoryBus(Bus):
    """The default: subscribers get the very objects published, with no encoding."""

    def publish(self, message: BusMessage) -> None:
        self._metrics.bus_published.inc()
        self._deliver(message)
