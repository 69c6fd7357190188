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
