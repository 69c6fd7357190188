"""Turning a bearer secret into a Principal, and managing API tokens."""

from __future__ import annotations

import secrets
import time

from telehub.core.ports import LivePublisher, Store
from telehub.core.sessions import SessionRegistry
from telehub.domain.devices import (
    API_TOKEN_PREFIX,
    DEVICE_TOKEN_PREFIX,
    ApiToken,
    Principal,
    Scope,
    fingerprint,
    hash_secret,
    new_secret,
)
from telehub.domain.live import CredentialKind, Revoked
from telehub.domain.readings import now_us
from telehub.errors import Forbidden, NotFound, Unauthenticated

_CACHE_MAX = 10_000
BOOTSTRAP_TOKEN = "bootstrap"
# The bootstrap token's name until its secret has been shown: a start that made
# it but failed before showing it leaves it so, and the next start can say that
# no one has an admin token yet.
BOOTSTRAP_NOT_SHOWN = "bootstrap (not shown)"


def bearer_secret(authorization: str | None) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` value, or None.

    The one reading of that header for HTTP, the live WebSocket and gRPC metadata,
    so a credential one transport takes is taken by all.
    """
    if not authorization:
        return None
    scheme, _, secret = authorization.strip().partition(" ")
    secret = secret.strip()
    return secret if secret and scheme.lower() == "bearer" else None


class Authenticator:
    """Resolves secrets, trusting a verified one for ``cache_seconds`` to spare the database.

    It is also told of revocations (``revoke``): the credential leaves its
    cache and the live sessions of it end, here at once and in every other
    process as soon as the bus brings them the news (``revoked``). A process
    that missed the news (the bus lost it) rechecks its sessions (``recheck``).
    """

    def __init__(
        self,
        *,
        store: Store,
        cache_seconds: float,
        sessions: SessionRegistry,
        bus: LivePublisher,
    ) -> None:
        self._store = store
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._sessions = sessions
        self._bus = bus
        self._revocations = 0  # applied so far

    async def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthenticated("a bearer token is required")
        digest = hash_secret(secret)
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        while True:
            seen = self._revocations
            principal = await self._lookup(secret, digest)
            # A revocation applied while the lookup ran may have come after what it
            # read: a session opened on that answer would never hear of it.
            if self._revocations == seen:
                break
        if self._ttl > 0:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[digest] = (principal, time.monotonic() + self._ttl)
        return principal

    async def _lookup(self, secret: str, digest: str) -> Principal:
        if secret.startswith(DEVICE_TOKEN_PREFIX):
            device = await self._store.devices.by_token_hash(digest)
            if device is not None:
                return Principal(scope=None, device_id=device.id, credential=digest)
        elif secret.startswith(API_TOKEN_PREFIX):
            token = await self._store.tokens.by_hash(digest)
            if token is not None:
                return Principal(scope=token.scope, token_id=token.id)
        raise Unauthenticated("the token is unknown or has been revoked")

    def revoke(self, revoked: Revoked) -> None:
        """A revocation was committed: apply it here now, and announce it to every process."""
        self.revoked(revoked)
        self._bus.publish(revoked)

    def revoked(self, revoked: Revoked) -> int:
        """Apply a revocation (from any process): the credential leaves the cache, and each
        live session of it ends. How many sessions ended."""
        self._revocations += 1
        stale = [d for d, (p, _) in self._cache.items() if revoked.ends(p)]
        for digest in stale:
            del self._cache[digest]
        return self._sessions.revoke(revoked)

    def forget(self) -> None:
        """Drop every cached verification (news of revocations may have been lost)."""
        self._cache.clear()

    async def recheck(self, *, devices: bool) -> int:
        """End the live sessions whose credential no longer holds, looked up in the store.

        API tokens take one query; each device credential one more, so those
        only when ``devices`` (after the bus lost messages). How many ended.
        """
        principals = self._sessions.principals()
        ended = 0
        token_ids = {p.token_id for p in principals if p.token_id is not None}
        if token_ids:
            alive = {t.id for t in await self._store.tokens.all()}
            for token_id in token_ids - alive:
                ended += self.revoked(Revoked(CredentialKind.TOKEN, token_id))
        if devices:
            held: dict[str, set[str]] = {}
            for p in principals:
                if p.device_id is not None and p.credential is not None:
                    held.setdefault(p.device_id, set()).add(p.credential)
            for device_id, credentials in held.items():
                valid = [c for c in credentials if await self._holds(c, device_id)]
                if len(valid) == len(credentials):
                    continue
                if valid:  # a device has one token at a time: its sessions stay
                    keep: str | None = fingerprint(valid[0])
                elif await self._store.devices.get(device_id) is None:
                    keep = None  # deleted
                else:
                    keep = ""  # rotated, and none of its sessions has the new token
                ended += self.revoked(Revoked(CredentialKind.DEVICE, device_id, keep))
        return ended

    async def _holds(self, token_hash: str, device_id: str) -> bool:
        device = await self._store.devices.by_token_hash(token_hash)
        return device is not None and device.id == device_id


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
        self._auth.revoke(Revoked(CredentialKind.TOKEN, token_id))

    async def bootstrap(self) -> str | None:
        """On first start, make the admin token a new installation needs; else None.

        Call :meth:`bootstrap_shown` once the secret has been shown to someone.
        """
        if await self._store.tokens.has_admin():
            return None
        _, secret = await self.create(name=BOOTSTRAP_NOT_SHOWN, scope=Scope.ADMIN)
        return secret

    async def bootstrap_shown(self) -> None:
        """The bootstrap secret was shown: its token is no longer one that no one has."""
        for token in await self._store.tokens.all():
            if token.name == BOOTSTRAP_NOT_SHOWN:
                await self._store.tokens.rename(token.id, BOOTSTRAP_TOKEN)

    async def bootstrap_lost(self) -> bool:
        """True if the only admin tokens are bootstrap tokens whose secret no one was shown."""
        admins = [t for t in await self._store.tokens.all() if t.scope is Scope.ADMIN]
        return bool(admins) and all(t.name == BOOTSTRAP_NOT_SHOWN for t in admins)
