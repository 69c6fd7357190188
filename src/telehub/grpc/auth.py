"""Who is calling: the bearer token of the ``authorization`` metadata, as for HTTP."""

from __future__ import annotations

import grpc

from telehub.core.auth import Authenticator, bearer_secret, require
from telehub.domain.devices import Principal, Scope

Context = grpc.aio.ServicerContext[object, object]


def bearer(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return bearer_secret(value.decode() if isinstance(value, bytes) else value)
    return None


async def caller(auth: Authenticator, context: Context, scope: Scope | None = None) -> Principal:
    """The caller, holding ``scope`` when one is given (raises Unauthenticated/Forbidden)."""
    principal = await auth.authenticate(bearer(context))
    if scope is not None:
        require(principal, scope)
    return principal
