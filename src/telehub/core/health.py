"""Whether this process can serve: what health endpoints and start-up checks ask."""

from __future__ import annotations

from telehub.core.ports import Store


class DatabaseHealth:
    """The database, as a readiness check sees it: it answers, and its schema is current."""

    def __init__(self, *, store: Store) -> None:
        self._store = store

    async def ping(self) -> None:
        """A round trip within the connect deadline; raises whatever kept it from answering."""
        await self._store.ping()

    async def schema_pending(self) -> bool:
        """True when migrations are still to run (``telehub db upgrade``)."""
        return await self._store.schema_pending()


class ComponentStates:
    """What the parts running in this process say of themselves (the MQTT bridge:
    ``subscribed``, ``resubscribing``, …), for /readyz to show beside the database.

    A port of its own so that a part reports its state without holding the hub;
    the states inform an operator and do not decide readiness (a hub whose
    bridge is reconnecting still takes HTTP and gRPC readings).
    """

    def __init__(self) -> None:
        self._states: dict[str, str] = {}

    def set(self, component: str, state: str) -> None:
        self._states[component] = state

    def clear(self, component: str) -> None:
        """The part stopped on purpose: it no longer reports anything."""
        self._states.pop(component, None)

    def snapshot(self) -> dict[str, str]:
        return dict(self._states)
