"""The SQL implementation of the core's ``Store`` port."""

from __future__ import annotations

from telehub.config import Settings
from telehub.storage import migrate
from telehub.storage.database import create_engine, ping
from telehub.storage.devices import SqlDeviceStore, SqlTokenStore
from telehub.storage.readings import SqlReadingStore
from telehub.storage.rejected import SqlRejectedStore


class SqlStore:
    """One engine, four repositories; SQLite or PostgreSQL by URL."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.engine = create_engine(settings)
        self.devices = SqlDeviceStore(self.engine)
        self.readings = SqlReadingStore(self.engine)
        self.tokens = SqlTokenStore(self.engine)
        self.rejected = SqlRejectedStore(self.engine)

    async def upgrade(self) -> None:
        await migrate.upgrade(self.engine, schema=self._settings.database_schema)

    async def ping(self) -> None:
        await ping(self.engine)

    async def close(self) -> None:
        self.readings.close()
        await self.engine.dispose()
