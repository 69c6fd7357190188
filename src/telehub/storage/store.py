"""The SQL implementation of the core's ``Store`` port."""

from __future__ import annotations

import asyncio
import functools

from sqlalchemy.ext.asyncio import AsyncEngine

from telehub.config import Settings
from telehub.core.batching import BatchingPolicy
from telehub.errors import StorageTimeout
from telehub.storage import migrate, pg_connect
from telehub.storage.commands import SqlCommandStore
from telehub.storage.database import create_engine, pg_server_settings, ping
from telehub.storage.devices import SqlDeviceStore, SqlTokenStore
from telehub.storage.events import SqlEventStore
from telehub.storage.pg_writer import PgBatchWriter
from telehub.storage.readings import SqlReadingStore
from telehub.storage.rejected import SqlRejectedStore
from telehub.storage.rollups import SqlRollupStore
from telehub.storage.sqlite_writer import SqliteBatchWriter
from telehub.storage.tickets import SqlTicketStore


def _batch_writer(
    settings: Settings, engine: AsyncEngine, batching: BatchingPolicy
) -> SqliteBatchWriter | PgBatchWriter:
    """The ingest write path gets its own connection and thread, apart from the pool."""
    # Half the build lag: the other half absorbs clock skew and slow commits.
    margin_us = int(settings.rollup_lag_seconds * 1_000_000) // 2
    if engine.dialect.name == "sqlite":
        return SqliteBatchWriter(
            engine.url.database or "",
            late_margin_us=margin_us,
            inline_values=batching.inline_values,
            inline_budget_seconds=batching.inline_budget_seconds,
            inline_pause_batches=batching.inline_pause_batches,
        )
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    server_settings = pg_server_settings(settings)
    # Named, so an operator (or a test) can tell the ingest writer in pg_stat_activity.
    schema = f"/{settings.database_schema}" if settings.database_schema else ""
    server_settings["application_name"] = f"telehub-writer{schema}"[:63]
    connect_timeout = settings.database_connect_timeout_seconds
    commit_timeout = settings.database_commit_timeout_seconds
    # No command timeout: the writer holds its whole commit to commit_timeout instead.
    connect = functools.partial(
        pg_connect.connect,
        dsn,
        server_settings=server_settings,
        connect_timeout=connect_timeout,
        command_timeout=None,
        dead_after=commit_timeout,
    )
    return PgBatchWriter(
        connect=connect,
        commit_timeout=commit_timeout,
        close_timeout=connect_timeout,
        late_margin_us=margin_us,
        one_statement_rows=batching.one_statement_rows,
    )


class SqlStore:
    """One engine, one repository per table group; SQLite or PostgreSQL by URL.

    Building one connects to nothing and starts no thread: the engine connects
    on first use, and the ingest writer starts its thread with the first batch
    that needs it.
    """

    def __init__(self, settings: Settings, *, batching: BatchingPolicy | None = None) -> None:
        self._settings = settings
        self.engine = create_engine(settings)
        self.devices = SqlDeviceStore(self.engine)
        self.rollups = SqlRollupStore(self.engine)
        self.readings = SqlReadingStore(
            self.engine,
            writer=_batch_writer(settings, self.engine, batching or BatchingPolicy.of(settings)),
            late=self.rollups.count_late,
        )
        self.tokens = SqlTokenStore(self.engine)
        self.tickets = SqlTicketStore(self.engine)
        self.rejected = SqlRejectedStore(self.engine)
        self.commands = SqlCommandStore(self.engine)
        self.events = SqlEventStore(self.engine)

    async def upgrade(self) -> None:
        if self._settings.is_sqlite:
            await migrate.upgrade(self.engine, schema=self._settings.database_schema)
            return
        # An engine without the statement deadline: a migration may rewrite a big table.
        engine = create_engine(self._settings, statement_deadline=False)
        try:
            await migrate.upgrade(engine, schema=self._settings.database_schema)
        finally:
            await engine.dispose()

    async def ping(self) -> None:
        """A round trip to the database within the connect deadline, else StorageTimeout."""
        deadline = self._settings.database_connect_timeout_seconds
        try:
            async with asyncio.timeout(deadline):
                await ping(self.engine)
        except TimeoutError as exc:
            raise StorageTimeout(f"the database did not answer within {deadline:g} s") from exc

    async def schema_pending(self) -> bool:
        """True when the database is behind the newest migration."""
        return await migrate.pending(self.engine)

    async def close(self) -> None:
        self.readings.close()
        await self.engine.dispose()
