"""The bounded dead-letter record of bad input."""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from telehub.domain.devices import RejectedInput
from telehub.storage.tables import rejected_messages as rm


class SqlRejectedStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(
        self,
        *,
        received_us: int,
        transport: str,
        device_id: str | None,
        reason: str,
        detail: str,
        excerpt: str,
        keep: int,
    ) -> None:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                insert(rm)
                .values(
                    received_us=received_us,
                    transport=transport,
                    device_id=device_id,
                    reason=reason,
                    detail=detail,
                    excerpt=excerpt,
                )
                .returning(rm.c.id)
            )
            new_id = result.scalar_one()
            # Ids only grow, so everything at or below new_id - keep is outside the window.
            if new_id > keep and new_id % 100 == 0:
                await conn.execute(delete(rm).where(rm.c.id <= new_id - keep))

    async def recent(
        self, *, limit: int, before_id: int | None, device_id: str | None
    ) -> list[RejectedInput]:
        query = select(rm).order_by(rm.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(rm.c.id < before_id)
        if device_id is not None:
            query = query.where(rm.c.device_id == device_id)
        async with self._engine.connect() as conn:
            rows = await conn.execute(query)
            return [
                RejectedInput(
                    id=r.id,
                    received_us=r.received_us,
                    transport=r.transport,
                    device_id=r.device_id,
                    reason=r.reason,
                    detail=r.detail,
                    excerpt=r.excerpt,
                )
                for r in rows
            ]

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(rm))).scalar_one())
