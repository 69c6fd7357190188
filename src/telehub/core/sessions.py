"""This process's live sessions by credential, so that a revocation ends each of them.

A live session (a WebSocket, an SSE stream, a gRPC stream, an MQTT
connection) authenticates once, when it opens, and may then run for days. It
registers here with the principal it authenticated as and how to end it. When
that credential is revoked (see :meth:`Authenticator.revoke
<telehub.core.auth.Authenticator.revoke>`, announced to every process on the
bus), each matching session is marked revoked, leaves the registry and has
its ``on_revoke`` called once; the transport then ends it its own way
(WebSocket close 1008, end of the SSE stream, gRPC UNAUTHENTICATED, MQTT
disconnect).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

from telehub.core.metrics import Metrics
from telehub.domain.devices import Principal
from telehub.domain.live import CredentialKind, Revoked

log = logging.getLogger(__name__)

OnRevoke = Callable[[Revoked], None]


class Session:
    """One registered session; ``close`` (or leaving the ``with`` block) unregisters it."""

    __slots__ = ("_key", "_on_revoke", "_registry", "principal", "revoked", "transport")

    def __init__(
        self,
        registry: SessionRegistry,
        key: str | None,
        principal: Principal,
        transport: str,
        on_revoke: OnRevoke,
    ) -> None:
        self._registry = registry
        self._key = key
        self._on_revoke = on_revoke
        self.principal = principal
        self.transport = transport
        self.revoked = False

    def close(self) -> None:
        self._registry._remove(self._key, self)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Also async, to sit in one ``async with`` beside the session's other resources.
    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SessionRegistry:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._sessions: dict[str, set[Session]] = {}
        self._listeners: list[OnRevoke] = []

    def listen(self, listener: OnRevoke) -> Callable[[], None]:
        """Also hear of every revocation, whether a session of it is live or not: for
        what outlives a session (an MQTT broker's stored session of an offline device).
        Returns how to stop; ``listener`` must not block."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def register(self, principal: Principal, *, transport: str, on_revoke: OnRevoke) -> Session:
        """A session of ``principal``; ``on_revoke`` must not block (it may start a task)."""
        key = _key_of(principal)
        session = Session(self, key, principal, transport, on_revoke)
        if key is not None:
            self._sessions.setdefault(key, set()).add(session)
        return session

    def revoke(self, revoked: Revoked) -> int:
        """End every session that ``revoked`` names; how many there were."""
        for listener in list(self._listeners):
            try:
                listener(revoked)
            except Exception:
                log.exception("a listener of revocations failed")
        key = f"{revoked.kind.value}:{revoked.id}"
        found = self._sessions.get(key)
        if not found:
            return 0
        ended = [s for s in found if revoked.ends(s.principal)]
        for session in ended:
            found.discard(session)
        if not found:
            del self._sessions[key]
        for session in ended:
            session.revoked = True
            self._metrics.sessions_revoked.labels(session.transport).inc()
            try:
                session._on_revoke(revoked)
            except Exception:
                log.exception(
                    "ending a %s session of a revoked credential failed", session.transport
                )
        return len(ended)

    def principals(self) -> list[Principal]:
        """One principal per credential that a live session holds (for a recheck)."""
        seen: dict[tuple[str | None, str | None, str | None], Principal] = {}
        for sessions in self._sessions.values():
            for session in sessions:
                p = session.principal
                seen.setdefault((p.token_id, p.device_id, p.credential), p)
        return list(seen.values())

    def _remove(self, key: str | None, session: Session) -> None:
        if key is None or (found := self._sessions.get(key)) is None:
            return
        found.discard(session)
        if not found:
            del self._sessions[key]


def _key_of(principal: Principal) -> str | None:
    """Where a revocation looks for the principal's sessions (see ``revoke``)."""
    if principal.token_id is not None:
        return f"{CredentialKind.TOKEN.value}:{principal.token_id}"
    if principal.device_id is not None:
        return f"{CredentialKind.DEVICE.value}:{principal.device_id}"
    return None
