"""Run Alembic migrations from code, on the application's own async engine."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from telehub.storage.database import ensure_schema


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "telehub.storage:migrations")
    return cfg


async def upgrade(
    engine: AsyncEngine, *, schema: str | None = None, revision: str = "head"
) -> None:
    """Bring the database to ``revision``; the same migrations serve SQLite and PostgreSQL."""
    await ensure_schema(engine, schema)
    cfg = alembic_config()

    def run(conn: Connection) -> None:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def pending(engine: AsyncEngine) -> bool:
    """True when the database is behind the newest migration."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()

    def current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(current) != head
