"""The PostgreSQL batch writer: COPY, the only path fast enough for telemetry.

Fast path: COPY straight into ``readings`` under a savepoint. A unique
violation means some readings are already stored (a resend): roll back to the
savepoint and go through a staging table with ``ON CONFLICT DO NOTHING``,
which tells exactly which readings were new.
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncEngine

from telehub.storage.batch import Batch, Key, upsert_sql

_COLUMNS = ["device_id", "metric", "ts", "value"]


async def write(engine: AsyncEngine, batch: Batch) -> list[Key]:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        pg: Any = raw.driver_connection
        async with pg.transaction():
            inserted = await _insert(pg, batch)
            if batch.latest:
                await pg.executemany(upsert_sql("device_latest", "metric", pg=True), batch.latest)
            if batch.state:
                await pg.executemany(upsert_sql("device_state", "key", pg=True), batch.state)
            await pg.execute(
                "UPDATE devices SET last_seen_us = $1 WHERE id = ANY($2::varchar[])",
                batch.received_us,
                batch.device_ids,
            )
    return inserted


async def _insert(pg: Any, batch: Batch) -> list[Key]:
    if not batch.rows:
        return []
    try:
        async with pg.transaction():
            await pg.copy_records_to_table("readings", records=batch.rows, columns=_COLUMNS)
    except asyncpg.UniqueViolationError:
        pass
    else:
        return [(r[0], r[1], r[2]) for r in batch.rows]
    await pg.execute(
        "CREATE TEMP TABLE IF NOT EXISTS readings_staging "
        "(device_id varchar(64), metric varchar(64), ts bigint, value float8) "
        "ON COMMIT DELETE ROWS"
    )
    await pg.copy_records_to_table("readings_staging", records=batch.rows, columns=_COLUMNS)
    rows = await pg.fetch(
        "INSERT INTO readings (device_id, metric, ts, value) "
        "SELECT device_id, metric, ts, value FROM readings_staging "
        "ON CONFLICT DO NOTHING RETURNING device_id, metric, ts"
    )
    return [(r[0], r[1], r[2]) for r in rows]
