"""``POST /api/v1/live/tickets``: a single-use ticket, so a live feed's URL holds no token."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from telehub.api.deps import ReadScope, TicketsDep

router = APIRouter(prefix="/api/v1/live", tags=["live"])


class LiveTicket(BaseModel):
    model_config = ConfigDict(frozen=True)

    ticket: str = Field(
        description="for `?ticket=` on /api/v1/ws or /api/v1/events: one connection, once"
    )
    expires_in: int = Field(description="seconds left to use it")


@router.post("/tickets", status_code=status.HTTP_201_CREATED, response_model=LiveTicket)
async def create_ticket(
    tickets: TicketsDep, principal: ReadScope, response: Response
) -> LiveTicket:
    """A ticket standing for the caller's token, with the same scope, for a browser to put
    in a live feed's URL instead of the token (which would reach logs and history).

    It opens one WebSocket or SSE stream within `expires_in` seconds; it is spent by
    that (or by a refused attempt), and is not a bearer token for anything else.
    """
    ticket = await tickets.issue(principal)
    response.headers["Cache-Control"] = "no-store"
    return LiveTicket(ticket=ticket, expires_in=tickets.ttl_seconds)
