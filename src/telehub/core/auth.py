"""Turning a bearer secret into a Principal, and managing API tokens."""

from __future__ import annotations

import secrets
import time

from telehub.core.ports import Store
from telehub.domain.devices import (
    API_TOKEN_PREFIX,
    DEVICE_TOKEN_PREFIX,
    ApiToken,
    Principal,
    Scope,
    hash_secret,
    new_secret,
)
from telehub.domain.readings import now_us
from telehub.errors import Forbidden, NotFound, Unauthenticated

_CACHE_MAX = 10_000


class Authenticator:
    """Resolves secrets, trusting a verified one for ``cache_seconds`` to spare the database.

    Revocation in this process is immediate (``forget``); other processes see it
    within ``cache_seconds``.
    """

    def __init__(self, *, store: Store, cache_seconds: float) -> None:
        self._store = store
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthenticated("a bearer token is required")
        digest = hash_secret(secret)
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        principal = await self._lookup(secret, digest)
        if self._ttl > 0:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[digest] = (principal, time.monotonic() + self._ttl)
        return principal

    async def _lookup(self, secret: str, digest: str) -> Principal:
        if secret.startswith(DEVICE_TOKEN_PREFIX):
            device = await self._store.devices.by_token_hash(digest)
            if device is not None:
                return Principal(scope=None, device_id=device.id)
        elif secret.startswith(API_TOKEN_PREFIX):
            token = await self._store.tokens.by_hash(digest)
            if token is not None:
                return Principal(scope=token.scope, token_id=token.id)
        raise Unauthenticated("the token is unknown or has been revoked")

    def forget(self) -> None:
        """Drop every cached verification (after a token is rotated or deleted)."""
        self._cache.clear()


def require(principal: Principal, scope: Scope) -> None:
    """Raise :class:`Forbidden` unless ``principal`` holds ``scope`` (devices hold none)."""
    if principal.scope is None or not principal.scope.allows(scope):
        raise Forbidden(f"this operation needs a token with scope {scope.value!r}")


class TokenService:
    def __init__(self, *, store: Store, auth: Authenticator) -> None:
        self._store = store
        self._auth = auth

    async def create(self, *, name: str, scope: Scope) -> tuple[ApiToken, str]:
        """Make a token; the secret is returned once and only its hash is kept."""
        secret = new_secret(API_TOKEN_PREFIX)
        token = ApiToken(id=secrets.token_hex(8), name=name, scope=scope, created_us=now_us())
        await self._store.tokens.create(token, token_hash=hash_secret(secret))
        return token, secret

    async def list(self) -> list[ApiToken]:
        return await self._store.tokens.all()

    async def delete(self, token_id: str) -> None:
        if not await self._store.tokens.delete(token_id):
            raise NotFound(f"token {token_id!r} does not exist")
        self._auth.forget()

    async def bootstrap(self) -> str | None:
        """On first start, make the admin token a new installation needs; else None."""
        if await self._store.tokens.has_admin():
            return None
        _, secret = await self.create(name="bootstrap", scope=Scope.ADMIN)
        return secret
