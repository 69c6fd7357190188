"""Alembic migrations: they build exactly the tables the code uses, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, delete, insert, select, text

from telehub.config import Settings
from telehub.hub import Hub
from telehub.storage import migrate
from telehub.storage.database import create_engine
from telehub.storage.tables import devices, events, metadata, readings

DEVICE_ROW = {"id": "d1", "name": "d1", "attributes": {}, "token_hash": "h1", "created_us": 1}
EVENT_ROW = {"type": "presence", "device_id": "d1", "at_us": 1, "data": {}}


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


async def test_device_ids_grow_to_128_characters_and_stored_data_stays(
    backend: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # A database made by the migrations before 0007 and 0008, holding a device, a reading and
    # an event log whose newest event is gone (its sequence is past its largest id).
    fresh = {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"}
    settings = make_settings(**(fresh if backend == "sqlite" else {}))
    engine = create_engine(settings)
    long_id = "aa:bb:cc:dd:ee:ff." + "x" * 110
    try:
        await migrate.upgrade(engine, schema=settings.database_schema, revision="0006")
        async with engine.begin() as conn:
            await conn.execute(insert(devices).values(DEVICE_ROW))
            await conn.execute(insert(readings).values(device_id="d1", metric="t", ts=1, value=2.0))
            for n in (1, 2):
                await conn.execute(insert(events).values(EVENT_ROW | {"id": n}))
            await conn.execute(delete(events).where(events.c.id == 2))
            if backend == "postgres":
                await conn.execute(text("SELECT setval(pg_get_serial_sequence('events', 'id'), 2)"))

        await migrate.upgrade(engine, schema=settings.database_schema)

        async with engine.begin() as conn:
            assert (await conn.execute(select(readings.c.value))).scalars().all() == [2.0]
            await conn.execute(
                insert(devices).values(DEVICE_ROW | {"id": long_id, "token_hash": "h2"})
            )
            await conn.execute(insert(events).values(EVENT_ROW | {"device_id": long_id}))
            ids = (await conn.execute(select(events.c.id).order_by(events.c.id))).scalars().all()
            assert ids == [1, 3]  # event ids only grow
            if backend == "sqlite":
                schema = dict(
                    (await conn.execute(text("SELECT name, sql FROM sqlite_master"))).all()
                )
                assert "WITHOUT ROWID" in schema["readings"]
                assert "WITHOUT ROWID" in schema["rollups"]
                assert "AUTOINCREMENT" in schema["events"]
                assert "VARCHAR(128)" in schema["device_state"]
    finally:
        await engine.dispose()
