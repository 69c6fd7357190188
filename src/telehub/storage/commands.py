"""Commands: the table is the queue, and every state change is one conditional UPDATE.

Each transition names the states it may start from in its WHERE clause, so of
two processes racing (two bridges claiming, an ack against an expiry) exactly
one wins, on SQLite and PostgreSQL alike. Whether a device can be sent a command
is its stored presence (``devices.online``): only those reported online are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from telehub.domain.commands import Command, CommandStatus
from telehub.storage.tables import commands, devices

_OPEN = tuple(s.value for s in CommandStatus if s.open)
_UNSENT = (CommandStatus.PENDING.value, CommandStatus.QUEUED.value)
# Devices that may be sent a command now: reported online (None: never reported).
_ONLINE = select(devices.c.id).where(devices.c.online.is_(True))


def _command(row: Any) -> Command:
    return Command(
        id=row.id,
        device_id=row.device_id,
        batch_id=row.batch_id,
        name=row.name,
        params=row.params,
        status=CommandStatus(row.status),
        created_us=row.created_us,
        expires_us=row.expires_us,
        sent_us=row.sent_us,
        delivered_us=row.delivered_us,
        done_us=row.done_us,
        result=row.result,
    )


class SqlCommandStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, new: Sequence[Command]) -> None:
        rows = [
            {
                "id": c.id,
                "device_id": c.device_id,
                "batch_id": c.batch_id,
                "name": c.name,
                "params": c.params,
                "status": c.status.value,
                "created_us": c.created_us,
                "expires_us": c.expires_us,
            }
            for c in new
        ]
        async with self._engine.begin() as conn:
            await conn.execute(insert(commands), rows)

    async def get(self, device_id: str, command_id: str) -> Command | None:
        query = select(commands).where(
            commands.c.id == command_id, commands.c.device_id == device_id
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _command(row) if row else None

    async def page(self, device_id: str, *, limit: int, before: Command | None) -> list[Command]:
        """Newest first; ``before`` is the last command of the previous page."""
        query = (
            select(commands)
            .where(commands.c.device_id == device_id)
            .order_by(commands.c.created_us.desc(), commands.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(
                or_(
                    commands.c.created_us < before.created_us,
                    and_(commands.c.created_us == before.created_us, commands.c.id < before.id),
                )
            )
        async with self._engine.connect() as conn:
            return [_command(r) for r in await conn.execute(query)]

    async def batch(self, batch_id: str) -> list[Command]:
        query = (
            select(commands).where(commands.c.batch_id == batch_id).order_by(commands.c.device_id)
        )
        async with self._engine.connect() as conn:
            return [_command(r) for r in await conn.execute(query)]

    async def online(self, device_ids: Sequence[str]) -> set[str]:
        """Which of these devices are reported online now."""
        query = select(devices.c.id).where(devices.c.id.in_(device_ids), devices.c.online.is_(True))
        async with self._engine.connect() as conn:
            return set((await conn.execute(query)).scalars())

    async def park(self, *, now_us: int) -> list[Command]:
        """Mark every unexpired pending command of a device not online queued; return them."""
        async with self._engine.begin() as conn:
            parked = await conn.execute(
                update(commands)
                .where(
                    commands.c.status == CommandStatus.PENDING.value,
                    commands.c.expires_us > now_us,
                    commands.c.device_id.not_in(_ONLINE),
                )
                .values(status=CommandStatus.QUEUED.value)
                .returning(*commands.c)
            )
            return [_command(r) for r in parked]

    async def claim_due(self, *, now_us: int, expiring_after_us: int, limit: int) -> list[Command]:
        """Mark up to ``limit`` pending or queued commands of online devices that expire after
        ``expiring_after_us`` sent, and return them (oldest first)."""
        async with self._engine.begin() as conn:
            ids = (
                (
                    await conn.execute(
                        select(commands.c.id)
                        .where(
                            commands.c.status.in_(_UNSENT),
                            commands.c.expires_us > expiring_after_us,
                            commands.c.device_id.in_(_ONLINE),
                        )
                        .order_by(commands.c.created_us)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            claimed = await conn.execute(
                update(commands)
                .where(commands.c.id.in_(ids), commands.c.status.in_(_UNSENT))
                .values(status=CommandStatus.SENT.value, sent_us=now_us)
                .returning(*commands.c)
            )
            return sorted((_command(r) for r in claimed), key=lambda c: c.created_us)

    async def deliver(self, device_id: str, command_id: str, *, now_us: int) -> Command | None:
        """Mark a sent, unexpired command delivered; None when it is not (acked already, say)."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(commands)
                    .where(
                        commands.c.id == command_id,
                        commands.c.device_id == device_id,
                        commands.c.status == CommandStatus.SENT.value,
                        commands.c.expires_us > now_us,
                    )
                    .values(status=CommandStatus.DELIVERED.value, delivered_us=now_us)
                    .returning(*commands.c)
                )
            ).first()
        return _command(row) if row else None

    async def finish(
        self,
        device_id: str,
        command_id: str,
        *,
        status: CommandStatus,
        result: Any,
        now_us: int,
    ) -> Command | None:
        """Close an open, unexpired command; None when it is not (the caller says why)."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(commands)
                    .where(
                        commands.c.id == command_id,
                        commands.c.device_id == device_id,
                        commands.c.status.in_(_OPEN),
                        commands.c.expires_us > now_us,
                    )
                    .values(status=status.value, result=result, done_us=now_us)
                    .returning(*commands.c)
                )
            ).first()
        return _command(row) if row else None

    async def expire(self, *, now_us: int) -> list[Command]:
        """Close every open command whose time has run out; return those just expired."""
        async with self._engine.begin() as conn:
            expired = await conn.execute(
                update(commands)
                .where(commands.c.status.in_(_OPEN), commands.c.expires_us <= now_us)
                .values(status=CommandStatus.EXPIRED.value, done_us=now_us)
                .returning(*commands.c)
            )
            return [_command(r) for r in expired]
