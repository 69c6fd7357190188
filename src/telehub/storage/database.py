"""The async engine, tuned for durability: what was acknowledged survives kill -9.

On PostgreSQL no wait is open-ended (connect, checkout, statement, close): a
database gone silent makes requests fail with StorageUnavailable after a
deadline, instead of hanging for the whole outage.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

from telehub.config import Settings
from telehub.errors import ConfigError, StorageTimeout, StorageUnavailable

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


def create_engine(settings: Settings, *, statement_deadline: bool = True) -> AsyncEngine:
    """Build the engine for ``settings.database_url``; nothing connects until first use.

    On PostgreSQL every wait has a deadline (``storage/pg_connect.py``), that of
    statements unless ``statement_deadline`` is false (migrations may rewrite a
    big table for longer).
    """
    kwargs: dict[str, Any] = {"json_serializer": json_text}
    if settings.is_sqlite:
        engine = create_async_engine(settings.database_url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    statement_timeout = settings.database_statement_timeout_seconds
    engine = create_async_engine(
        settings.database_url,
        **kwargs,
        poolclass=_Pool,
        pool_size=settings.database_pool_size,
        # Waiting for a pooled connection: as long as the statement that holds it, at most.
        pool_timeout=statement_timeout,
        async_creator=_connector(settings, statement_timeout if statement_deadline else None),
    )
    event.listen(engine.sync_engine, "connect", _fresh)
    event.listen(engine.sync_engine, "checkout", _pinger(settings.database_connect_timeout_seconds))
    event.listen(engine.sync_engine, "close", _goodbye)
    event.listen(engine.sync_engine, "handle_error", _unavailable)
    return engine


def _connector(settings: Settings, command_timeout: float | None) -> Any:
    """asyncpg.connect with deadlines; a refused or failed connection is StorageUnavailable."""
    from telehub.storage import pg_connect  # imports asyncpg: only for PostgreSQL

    dsn = make_url(settings.database_url).set(drivername="postgresql")
    server_settings = pg_server_settings(settings)

    async def connect() -> Any:
        return await pg_connect.connect(
            dsn.render_as_string(hide_password=False),
            server_settings=server_settings,
            connect_timeout=settings.database_connect_timeout_seconds,
            command_timeout=command_timeout,
            dead_after=settings.database_commit_timeout_seconds,
        )

    return connect


class _Pool(AsyncAdaptedQueuePool):
    """The async queue pool, where no free connection within ``pool_timeout`` is StorageTimeout."""

    def _do_get(self) -> ConnectionPoolEntry:
        try:
            return super()._do_get()
        except PoolTimeout as exc:
            raise StorageTimeout(f"no database connection was free in time ({exc})") from exc


_FRESH = "telehub_fresh"


def _fresh(_dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    record.info[_FRESH] = True


def _pinger(timeout: float) -> Any:
    """Ping a pooled connection as it is checked out, within ``timeout``.

    SQLAlchemy's ``pool_pre_ping`` waits for as long as the statement deadline
    and then fails the checkout with the timeout. This ping has the connect
    deadline (a ping costs no more than a handshake), and a ping unanswered
    has the pool replace the connection, as a refused one does.
    """

    def ping(dbapi_conn: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        if record.info.pop(_FRESH, False):
            return  # it has just answered the handshake
        try:
            dbapi_conn.run_async(lambda pg: pg.execute("SELECT 1", timeout=timeout))
        except Exception as exc:
            # Terminated here: SQLAlchemy would first try a graceful close, waiting 2 s more.
            dbapi_conn.driver_connection.terminate()
            # The others went the same way, most likely: each is replaced on its checkout.
            raise InvalidatePoolError(f"the database did not answer a ping ({exc!r})") from exc

    return ping


# A goodbye to a database that answers takes one round trip; one unanswered this long
# is to a database gone silent, and the connection is dropped instead.
_GOODBYE_SECONDS = 1.0


def _goodbye(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    """Close a pooled connection, within ``_GOODBYE_SECONDS``.

    asyncpg would wait for the server's answer as long as the statement
    deadline, one connection after the other: a hub stopping during a
    partition would take minutes, each wait then logged as an error.
    """
    driver = dbapi_conn.driver_connection
    if driver is None or driver.is_closed():
        return
    try:
        dbapi_conn.run_async(lambda pg: pg.close(timeout=_GOODBYE_SECONDS))
    except Exception:  # unanswered (asyncpg has dropped it), or not from the event loop
        driver.terminate()


def _unavailable(context: ExceptionContext) -> None:
    """A connection lost or silent mid-statement is StorageUnavailable (the pool replaces it)."""
    lost = context.original_exception
    if context.is_pre_ping or not isinstance(lost, Exception):
        return  # the pool reconnects by itself; a cancellation must stay one
    if isinstance(lost, TimeoutError):  # asyncpg's command_timeout
        context.is_disconnect = True  # never reused: it may still be busy with the statement
        # Only this one: a statement may be slow on its own; the others are pinged at checkout.
        context.invalidate_pool_on_disconnect = False
        if context.connection is not None:
            # At once: SQLAlchemy would first try a graceful close, waiting 2 s more.
            driver = context.connection.connection.driver_connection
            if driver is not None:
                driver.terminate()
        raise StorageTimeout("the database did not answer the statement in time") from lost
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
