"""The live bus: committed readings and logged events, to every subscriber in every process.

Chosen by ``TELEHUB_BUS_URL``: ``memory`` (one process, the default) or
``redis://…`` (several processes or hosts; needs the ``redis`` extra).
"""

from __future__ import annotations

from telehub.bus.base import Bus
from telehub.bus.subscription import Channel, Delivery, Subscription
from telehub.config import Settings
from telehub.core.metrics import Metrics
from telehub.errors import ConfigError

__all__ = ["Bus", "Channel", "Delivery", "Subscription", "bus_for"]


def bus_for(settings: Settings, metrics: Metrics) -> Bus:
    """The backend named by the URL's scheme; its library is imported only when used."""
    backlog = settings.bus_subscriber_backlog
    if settings.bus_url == "memory":
        from telehub.bus.memory import MemoryBus

        return MemoryBus(metrics=metrics, backlog=backlog)
    try:
        from telehub.bus.redis import RedisBus
    except ImportError:
        raise ConfigError(
            "TELEHUB_BUS_URL=redis://… needs the redis extra: pip install 'telehub[redis]'"
        ) from None
    return RedisBus(
        url=settings.bus_url,
        prefix=settings.bus_channel_prefix,
        metrics=metrics,
        backlog=backlog,
    )
