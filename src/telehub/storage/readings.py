"""Readings: the batch write path and the range queries.

The write path is the hot path, so it talks to the driver in bulk: multi-row
INSERT ... RETURNING on SQLite, COPY into a staging table on PostgreSQL. In
both, ``ON CONFLICT DO NOTHING`` on the ``(device_id, metric, ts)`` key makes
a resent batch land once and tells which readings were new.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import BigInteger, and_, func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from telehub.core.ports import Aggregate, LatestValues, Point
from telehub.domain.readings import Telemetry
from telehub.storage.tables import device_latest, device_state, readings

# SQLite allows 32766 bound parameters per statement; a reading takes four.
_SQLITE_ROWS_PER_STATEMENT = 8000

_AGG: dict[Aggregate, Callable[..., Any]] = {
    Aggregate.AVG: func.avg,
    Aggregate.MIN: func.min,
    Aggregate.MAX: func.max,
    Aggregate.SUM: func.sum,
    Aggregate.COUNT: func.count,
}


def _newest_per_key(rows: Iterable[tuple[str, str, int, Any]]) -> list[tuple[str, str, int, Any]]:
    """One row per (device, key): the newest. An upsert may touch each key once."""
    best: dict[tuple[str, str], tuple[str, str, int, Any]] = {}
    for row in rows:
        key = (row[0], row[1])
        old = best.get(key)
        if old is None or row[2] > old[2]:
            best[key] = row
    return list(best.values())


def _upsert_sql(table: str, key: str, *, pg: bool) -> str:
    """Latest wins by timestamp, not arrival: a late, older message never overwrites."""
    marks = (
        "($1, $2, $3, $4" + ("::json)" if table == "device_state" else ")")
        if pg
        else "(?, ?, ?, ?)"
    )
    return (
        f"INSERT INTO {table} (device_id, {key}, ts, value) VALUES {marks} "
        f"ON CONFLICT (device_id, {key}) DO UPDATE SET ts = excluded.ts, "
        f"value = excluded.value WHERE excluded.ts > {table}.ts"
    )


@dataclass(frozen=True, slots=True)
class _Batch:
    rows: list[tuple[str, str, int, Any]]
    latest: list[tuple[str, str, int, Any]]
    state: list[tuple[str, str, int, Any]]
    device_ids: list[str]
    received_us: int


def _in_range(device_id: str, metric: str, start_us: int, end_us: int) -> ColumnElement[bool]:
    """One series, ``start <= ts < end``: a prefix range of the primary key."""
    return and_(
        readings.c.device_id == device_id,
        readings.c.metric == metric,
        readings.c.ts >= start_us,
        readings.c.ts < end_us,
    )


class SqlReadingStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pg = engine.dialect.name == "postgresql"

    async def write(self, items: Sequence[Telemetry], *, received_us: int) -> list[int]:
        owner: dict[tuple[str, str, int], int] = {}
        rows: list[tuple[str, str, int, Any]] = []
        for index, item in enumerate(items):
            for r in item.readings:
                key = (r.device_id, r.metric, r.ts_us)
                owner.setdefault(key, index)
                rows.append((*key, r.value))
        batch = _Batch(
            rows=rows,
            latest=_newest_per_key(rows),
            state=_newest_per_key(
                (s.device_id, s.key, s.ts_us, orjson.dumps(s.value).decode())
                for item in items
                for s in item.state
            ),
            device_ids=sorted({item.device_id for item in items}),
            received_us=received_us,
        )
        inserted = await (self._write_pg(batch) if self._pg else self._write_sqlite(batch))
        new = [0] * len(items)
        for key in inserted:
            new[owner[key]] += 1
        return new

    async def _write_sqlite(self, batch: _Batch) -> list[tuple[str, str, int]]:
        inserted: list[tuple[str, str, int]] = []
        async with self._engine.begin() as conn:
            raw = await conn.get_raw_connection()
            db: Any = raw.driver_connection
            for start in range(0, len(batch.rows), _SQLITE_ROWS_PER_STATEMENT):
                chunk = batch.rows[start : start + _SQLITE_ROWS_PER_STATEMENT]
                sql = (
                    "INSERT INTO readings (device_id, metric, ts, value) VALUES "
                    + ",".join(["(?,?,?,?)"] * len(chunk))
                    + " ON CONFLICT DO NOTHING RETURNING device_id, metric, ts"
                )
                cursor = await db.execute(sql, [x for row in chunk for x in row])
                inserted.extend(tuple(k) for k in await cursor.fetchall())
                await cursor.close()
            if batch.latest:
                await db.executemany(_upsert_sql("device_latest", "metric", pg=False), batch.latest)
            if batch.state:
                await db.executemany(_upsert_sql("device_state", "key", pg=False), batch.state)
            await db.execute(
                "UPDATE devices SET last_seen_us = ? WHERE id IN "
                f"({','.join('?' * len(batch.device_ids))})",
                [batch.received_us, *batch.device_ids],
            )
        return inserted

    async def _write_pg(self, batch: _Batch) -> list[tuple[str, str, int]]:
        # The raw asyncpg connection in its own transaction: COPY is the only
        # way to reach the row rates a telemetry store needs on PostgreSQL.
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            pg: Any = raw.driver_connection
            async with pg.transaction():
                await pg.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS readings_staging "
                    "(device_id varchar(64), metric varchar(64), ts bigint, value float8) "
                    "ON COMMIT DELETE ROWS"
                )
                await pg.copy_records_to_table(
                    "readings_staging",
                    records=batch.rows,
                    columns=["device_id", "metric", "ts", "value"],
                )
                inserted = await pg.fetch(
                    "INSERT INTO readings (device_id, metric, ts, value) "
                    "SELECT device_id, metric, ts, value FROM readings_staging "
                    "ON CONFLICT DO NOTHING RETURNING device_id, metric, ts"
                )
                if batch.latest:
                    await pg.executemany(
                        _upsert_sql("device_latest", "metric", pg=True), batch.latest
                    )
                if batch.state:
                    await pg.executemany(_upsert_sql("device_state", "key", pg=True), batch.state)
                await pg.execute(
                    "UPDATE devices SET last_seen_us = $1 WHERE id = ANY($2::varchar[])",
                    batch.received_us,
                    batch.device_ids,
                )
        return [(r[0], r[1], r[2]) for r in inserted]

    async def metrics(self, device_id: str) -> list[str]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(device_latest.c.metric)
                .where(device_latest.c.device_id == device_id)
                .order_by(device_latest.c.metric)
            )
            return [r.metric for r in rows]

    async def points(
        self, *, device_id: str, metric: str, start_us: int, end_us: int, limit: int, desc: bool
    ) -> list[Point]:
        query = (
            select(readings.c.ts, readings.c.value)
            .where(_in_range(device_id, metric, start_us, end_us))
            .order_by(readings.c.ts.desc() if desc else readings.c.ts)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [Point(r.ts, r.value) for r in await conn.execute(query)]

    async def buckets(
        self,
        *,
        device_id: str,
        metric: str,
        start_us: int,
        end_us: int,
        width_us: int,
        agg: Aggregate,
        limit: int,
        desc: bool,
    ) -> list[Point]:
        # Buckets align to multiples of the width since the epoch, so the same
        # bucket has the same bounds whatever range a query asks for.
        width = literal(width_us, BigInteger)
        bucket = readings.c.ts.op("/", return_type=BigInteger)(width).op(
            "*", return_type=BigInteger
        )(width)
        query = (
            select(bucket.label("bucket"), _AGG[agg](readings.c.value).label("value"))
            .where(_in_range(device_id, metric, start_us, end_us))
            .group_by(text("1"))
            .order_by(text("1 DESC") if desc else text("1"))
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [Point(int(r.bucket), float(r.value)) for r in await conn.execute(query)]

    async def latest(self, device_id: str) -> LatestValues:
        async with self._engine.connect() as conn:
            latest = await conn.execute(
                select(device_latest.c.metric, device_latest.c.ts, device_latest.c.value).where(
                    device_latest.c.device_id == device_id
                )
            )
            values = {r.metric: Point(r.ts, r.value) for r in latest}
            state_rows = await conn.execute(
                select(device_state.c.key, device_state.c.ts, device_state.c.value).where(
                    device_state.c.device_id == device_id
                )
            )
            state = {r.key: (r.ts, r.value) for r in state_rows}
        return LatestValues(readings=values, state=state)
