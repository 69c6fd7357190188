"""The async engine, tuned for durability: what was acknowledged survives kill -9."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from telehub.config import Settings
from telehub.errors import ConfigError, StorageUnavailable

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Every SQLite connection of telehub's, the batch writers' too: WAL lets readers
# run beside the batch writer; synchronous=FULL makes each commit durable across a
# power cut, which is what an acknowledgement promises.
DURABLE_SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL")


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_conn.cursor()
    for pragma in DURABLE_SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def json_text(value: Any) -> str:
    """JSON as stored: UTF-8 kept as is, so SQLite's JSON paths match non-ASCII keys."""
    return json.dumps(value, ensure_ascii=False)


def create_engine(settings: Settings) -> AsyncEngine:
    """Build the engine for ``settings.database_url``; nothing connects until first use."""
    kwargs: dict[str, Any] = {"json_serializer": json_text}
    if settings.is_sqlite:
        engine = create_async_engine(settings.database_url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(
        settings.database_url,
        **kwargs,
        pool_size=settings.database_pool_size,
        pool_pre_ping=True,
        async_creator=_connector(settings),
    )
    event.listen(engine.sync_engine, "handle_error", _unavailable)
    return engine


def _connector(settings: Settings) -> Any:
    """asyncpg.connect, with a refused or failed connection as StorageUnavailable."""
    import asyncpg  # type: ignore[import-untyped]  # only for PostgreSQL

    dsn = make_url(settings.database_url).set(drivername="postgresql")
    server_settings = pg_server_settings(settings)

    async def connect() -> Any:
        try:
            return await asyncpg.connect(
                dsn.render_as_string(hide_password=False), server_settings=server_settings
            )
        except (OSError, asyncpg.PostgresConnectionError) as exc:
            raise StorageUnavailable(f"the database is unreachable ({exc!r})") from exc

    return connect


def _unavailable(context: ExceptionContext) -> None:
    """A connection lost mid-statement is StorageUnavailable too (the pool replaces it)."""
    lost = context.original_exception
    if context.is_pre_ping or not isinstance(lost, Exception):
        return  # the pool reconnects by itself; a cancellation must stay one
    if context.is_disconnect:
        raise StorageUnavailable(f"the database is unreachable ({lost!r})") from lost


def pg_server_settings(settings: Settings) -> dict[str, str]:
    """Session settings of every PostgreSQL connection telehub opens."""
    server_settings = {
        "application_name": "telehub",
        "synchronous_commit": "on",
        # Bucket queries are parameterised by width; a generic plan cannot see
        # how few groups there are and sorts a million rows instead of hashing.
        "plan_cache_mode": "force_custom_plan",
    }
    if settings.database_schema:
        if not _SCHEMA_RE.fullmatch(settings.database_schema):
            raise ConfigError(
                f"TELEHUB_DATABASE_SCHEMA={settings.database_schema!r} is not a plain identifier"
            )
        server_settings["search_path"] = settings.database_schema
    return server_settings


async def ensure_schema(engine: AsyncEngine, schema: str | None) -> None:
    """Create the configured PostgreSQL schema so migrations have somewhere to go."""
    if schema and engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
