"""The async engine, tuned for durability: what was acknowledged survives kill -9."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from telehub.config import Settings
from telehub.errors import ConfigError

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers run beside the batch writer; synchronous=FULL makes each
    # commit durable across a power cut, which is what an acknowledgement promises.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
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
    return create_async_engine(
        settings.database_url,
        **kwargs,
        pool_size=settings.database_pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": pg_server_settings(settings)},
    )


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
