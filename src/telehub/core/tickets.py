"""Live tickets: short-lived, single-use stand-ins for a token in a live feed's URL.

A browser cannot set headers on an EventSource (nor on a WebSocket), so a URL
would have to carry its token, and URLs end up in logs, proxies and browser
history. Instead the page asks for a ticket with its token in a header, and
puts the ticket in the URL: it opens one WebSocket or SSE stream, once, within
seconds, as the same token with the same scope, and is worthless afterwards.

Tickets live in the database, as hashes: any API process behind a proxy can
take a ticket another one issued, and taking it is one ``DELETE … RETURNING``,
so two processes cannot both take it. A signed stateless ticket would still
need that single-use record, plus a signing key shared by every process.
"""

from __future__ import annotations

from telehub.core.auth import require
from telehub.core.ports import Store
from telehub.domain.devices import Principal, Scope, hash_secret, new_secret
from telehub.domain.readings import now_us
from telehub.errors import Unauthenticated

TICKET_PREFIX = "tht_"


class LiveTickets:
    """Issues tickets to API tokens and redeems each ticket once, before it expires."""

    def __init__(self, *, store: Store, ttl_seconds: int) -> None:
        self._store = store
        self._ttl_us = ttl_seconds * 1_000_000
        self.ttl_seconds = ttl_seconds

    async def issue(self, principal: Principal) -> str:
        """A new ticket for ``principal`` (an API token with ``read`` at least).

        The secret is returned once; only its hash is kept.
        """
        require(principal, Scope.READ)
        # require() let only an API token through: a device holds no scope.
        assert principal.scope is not None
        assert principal.token_id is not None
        secret = new_secret(TICKET_PREFIX)
        now = now_us()
        await self._store.tickets.add(
            ticket_hash=hash_secret(secret),
            token_id=principal.token_id,
            scope=principal.scope,
            expires_us=now + self._ttl_us,
            now_us=now,
        )
        return secret

    async def redeem(self, ticket: str) -> Principal:
        """The principal the ticket was issued to; the ticket is spent either way.

        Raises Unauthenticated for a ticket that is unknown, used, expired, or
        whose token has been revoked since.
        """
        taken = None
        if ticket.startswith(TICKET_PREFIX):
            taken = await self._store.tickets.take(hash_secret(ticket), now_us=now_us())
        if taken is None:
            raise Unauthenticated("the ticket is unknown, used or expired")
        token_id, scope = taken
        return Principal(scope=scope, token_id=token_id)
