"""Live tickets: a row per unspent ticket, taken (deleted) at most once."""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from telehub.domain.devices import Scope
from telehub.storage.tables import api_tokens, live_tickets


class SqlTicketStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(
        self, *, ticket_hash: str, token_id: str, scope: Scope, expires_us: int, now_us: int
    ) -> None:
        async with self._engine.begin() as conn:
            # Issuing sweeps: the table holds about the tickets of the last TTL, no more.
            await conn.execute(delete(live_tickets).where(live_tickets.c.expires_us <= now_us))
            await conn.execute(
                insert(live_tickets).values(
                    ticket_hash=ticket_hash,
                    token_id=token_id,
                    scope=scope.value,
                    expires_us=expires_us,
                )
            )

    async def take(self, ticket_hash: str, *, now_us: int) -> tuple[str, Scope] | None:
        async with self._engine.begin() as conn:
            # The delete is the claim: of two processes taking one ticket, one gets the row.
            row = (
                await conn.execute(
                    delete(live_tickets)
                    .where(live_tickets.c.ticket_hash == ticket_hash)
                    .returning(
                        live_tickets.c.token_id, live_tickets.c.scope, live_tickets.c.expires_us
                    )
                )
            ).first()
            if row is None or row.expires_us <= now_us:
                return None
            # A token revoked since the ticket was issued takes its tickets with it.
            alive = (
                await conn.execute(select(api_tokens.c.id).where(api_tokens.c.id == row.token_id))
            ).first()
        return (row.token_id, Scope(row.scope)) if alive is not None else None
