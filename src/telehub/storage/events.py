"""The event log: numbered in commit order, bounded, readable from any id.

SSE clients resume by "everything after id N", so an id must never become
visible after a larger one. SQLite has one writer, so that holds by itself;
on PostgreSQL two transactions could take ids 10 and 11 and commit 11 first,
so appends take a transaction-scoped advisory lock: ids are drawn and
committed one transaction at a time. Events are few (presence, commands,
alerts, jobs), so the lock costs nothing that matters.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from telehub.domain.live import Event, EventDraft, EventType
from telehub.storage.tables import events

# pg_advisory_xact_lock key: "telehub events" folded into a bigint.
_PG_LOCK_KEY = 0x74656C6568756265
_TRIM_EVERY = 100


class SqlEventStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pg = engine.dialect.name == "postgresql"

    async def append(self, drafts: Sequence[EventDraft], *, keep: int) -> list[Event]:
        rows = [
            {"type": d.type.value, "device_id": d.device_id, "at_us": d.at_us, "data": d.data}
            for d in drafts
        ]
        async with self._engine.begin() as conn:
            if self._pg:
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY}
                )
            result = await conn.execute(
                insert(events).returning(events.c.id, sort_by_parameter_order=True), rows
            )
            ids = [row.id for row in result]
            newest = ids[-1]
            # Trimming now and then keeps the table near its bound without a delete per event.
            if newest > keep and newest // _TRIM_EVERY != (ids[0] - 1) // _TRIM_EVERY:
                await conn.execute(delete(events).where(events.c.id <= newest - keep))
        return [
            Event(id=i, type=d.type, device_id=d.device_id, at_us=d.at_us, data=d.data)
            for i, d in zip(ids, drafts, strict=True)
        ]

    async def after(
        self,
        after_id: int,
        *,
        types: Collection[EventType] | None = None,
        device_ids: Collection[str] | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        query = select(events).where(events.c.id > after_id).order_by(events.c.id).limit(limit)
        if types is not None:
            query = query.where(events.c.type.in_([t.value for t in types]))
        if device_ids is not None:
            query = query.where(events.c.device_id.in_(list(device_ids)))
        async with self._engine.connect() as conn:
            return [
                Event(
                    id=r.id,
                    type=EventType(r.type),
                    device_id=r.device_id,
                    at_us=r.at_us,
                    data=r.data,
                )
                for r in await conn.execute(query)
            ]

    async def bounds(self) -> tuple[int, int] | None:
        """(oldest id kept, newest id), or None while the log is empty."""
        async with self._engine.connect() as conn:
            oldest, newest = (
                await conn.execute(select(func.min(events.c.id), func.max(events.c.id)))
            ).one()
        return None if newest is None else (int(oldest), int(newest))
