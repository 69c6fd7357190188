"""Alembic migrations: they build exactly the tables the code uses, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from telehub.hub import Hub
from telehub.storage import migrate
from telehub.storage.tables import metadata


async def test_migrated_schema_matches_the_table_definitions(hub: Hub) -> None:
    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with hub.store.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_upgrade_is_idempotent_and_nothing_is_pending(hub: Hub) -> None:
    assert not await migrate.pending(hub.store.engine)
    await hub.store.upgrade()
    assert not await migrate.pending(hub.store.engine)
