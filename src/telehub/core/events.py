"""The durable event log, and the announcements of it on the bus.

Presence changes and command status changes (later alerts and job progress)
are written here after the change they describe is committed, then announced
on the bus. The log is what an SSE client resumes from with Last-Event-ID;
the bus only makes delivery prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

import orjson

from telehub.core.metrics import Metrics
from telehub.core.ports import LivePublisher, Store
from telehub.domain.commands import Command
from telehub.domain.live import Event, EventDraft, EventType, LoggedEvents
from telehub.domain.readings import now_us, to_iso

log = logging.getLogger(__name__)


class EventLog:
    def __init__(self, *, store: Store, bus: LivePublisher, metrics: Metrics, keep: int) -> None:
        self._store = store
        self._bus = bus
        self._metrics = metrics
        self._keep = keep

    async def record(self, drafts: Sequence[EventDraft]) -> list[Event]:
        """Log and announce; a failure is logged, never raised.

        The change an event describes is already committed when it is recorded:
        failing its caller now (an MQTT redelivery, an HTTP 503) would not undo
        it, only repeat it.
        """
        if not drafts:
            return []
        try:
            events = await self._store.events.append(drafts, keep=self._keep)
        except Exception:
            log.exception("could not log %d event(s); SSE clients will not see them", len(drafts))
            return []
        for event in events:
            self._metrics.events_logged.labels(event.type.value).inc()
        self._bus.publish(LoggedEvents(tuple(events)))
        return events

    async def after(
        self,
        after_id: int,
        *,
        types: Collection[EventType] | None = None,
        device_ids: Collection[str] | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Logged events with an id above ``after_id``, oldest first."""
        return await self._store.events.after(
            after_id, types=types, device_ids=device_ids, limit=limit
        )

    async def bounds(self) -> tuple[int, int] | None:
        """(oldest id kept, newest id), or None while nothing was logged."""
        return await self._store.events.bounds()


def presence_event(device_id: str, *, online: bool) -> EventDraft:
    at = now_us()
    return EventDraft(
        type=EventType.PRESENCE,
        device_id=device_id,
        at_us=at,
        data={"device_id": device_id, "online": online, "at": to_iso(at)},
    )


def command_event(command: Command, *, at_us: int | None = None) -> EventDraft:
    """A command's new status; params are left out (up to 64 KiB, and unchanged).

    ``at_us``: when it changed, for a change that stamps no time of its own (queued).
    """
    at = at_us or command.done_us or command.delivered_us or command.sent_us or command.created_us
    return EventDraft(
        type=EventType.COMMANDS,
        device_id=command.device_id,
        at_us=at,
        data={
            "command_id": command.id,
            "device_id": command.device_id,
            "batch_id": command.batch_id,
            "name": command.name,
            "status": command.status.value,
            "result": _portable(command.result),
            "at": to_iso(at),
        },
    )


def _portable(value: Any) -> Any:
    """A device's result as every consumer can encode it (orjson: integers up to 64 bits)."""
    try:
        orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return str(value)
    return value
