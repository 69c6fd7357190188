"""Who is calling: the bearer token of the ``authorization`` metadata, as for HTTP."""

from __future__ import annotations

import grpc

from telehub.core.auth import Authenticator, require
from telehub.domain.devices import Principal, Scope

Context = grpc.aio.ServicerContext[object, object]


def bearer(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, secret = text.partition(" ")
            return secret.strip() if scheme.lower() == "bearer" else None
    return None


async def caller(auth: Authenticator, context: Context, scope: Scope | None = None) -> Principal:
    """The caller, holding ``scope`` when one is given (raises Unauthenticated/Forbidden)."""
    principal = await auth.authenticate(bearer(context))
    if scope is not None:
        require(principal, scope)
    return principal
