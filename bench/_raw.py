"""The raw-driver side: bulk loads, and the baselines the server is measured against."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from _harness import Backend
from _load import Row
from telehub.core.rollups import RollupStats
from telehub.runtime import open_hub

QUERY_ROWS = 1_000_000
QUERY_METRIC = "q"
QUERY_STEP_US = 1_000_000  # one reading a second: 1M readings span ~11.6 days
QUERY_BUCKETS = 500
WARMUPS = 6  # > 5: PostgreSQL's custom-plan runs of a prepared statement

AGG_SQL = (
    "SELECT ts / {w} * {w} AS bucket, avg(value) AS value FROM readings "
    "WHERE device_id = {p} AND metric = {p} AND ts >= {p} AND ts < {p} "
    "GROUP BY 1 ORDER BY 1 LIMIT {p}"
)
SQLITE_AGG = AGG_SQL.format(w="?", p="?")
PG_AGG = (
    AGG_SQL.replace("{w}", "$1::bigint")
    .replace("{p}", "$2", 1)
    .replace("{p}", "$3", 1)
    .replace("{p}", "$4", 1)
    .replace("{p}", "$5", 1)
    .replace("{p}", "$6", 1)
)


@dataclass(frozen=True)
class QueryRange:
    device_id: str
    start_us: int
    end_us: int
    width_us: int

    def args(self) -> tuple[object, ...]:
        return (self.device_id, QUERY_METRIC, self.start_us, self.end_us, 10_000)


def query_range(device_id: str, now_s: int) -> QueryRange:
    """1M readings a second apart, starting on a bucket boundary a month ago: 500 buckets."""
    width = QUERY_ROWS * QUERY_STEP_US // QUERY_BUCKETS
    start = ((now_s - 30 * 86_400) * 1_000_000) // width * width
    return QueryRange(device_id, start, start + QUERY_ROWS * QUERY_STEP_US, width)


def _query_rows(q: QueryRange) -> Iterator[Row]:
    for i in range(QUERY_ROWS):
        yield (q.device_id, QUERY_METRIC, q.start_us + i * QUERY_STEP_US, float(i % 1000) / 10)


def _chunks(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def rollup_pass(backend: Backend) -> RollupStats:
    """One rollup build pass over the loaded data, as Celery beat (or `telehub serve`'s
    periodic pass) would have run it; on PostgreSQL then ANALYZE, as autovacuum would."""
    async with open_hub(backend.settings()) as hub:
        stats = await hub.rollups.run_pass()
    if backend.is_pg:
        conn = await backend.pg_connect()
        try:
            await conn.execute("VACUUM ANALYZE rollups")
        finally:
            await conn.close()
    return stats


# ---------------------------------------------------------------- SQLite


def _sqlite(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _last(q: QueryRange) -> tuple[int, float]:
    """The newest reading of the series: what ingest would have left in device_latest."""
    i = QUERY_ROWS - 1
    return q.start_us + i * QUERY_STEP_US, float(i % 1000) / 10


def sqlite_load_query_series(backend: Backend, q: QueryRange) -> float:
    """1M readings straight into the server's (migrated) database, one transaction,
    and the series' latest value (the rollup pass finds series there)."""
    t0 = time.perf_counter()
    conn = _sqlite(str(backend.sqlite_path))
    try:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?)", _query_rows(q))
        conn.execute(
            "INSERT INTO device_latest VALUES (?, ?, ?, ?)", (q.device_id, QUERY_METRIC, *_last(q))
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - t0


def sqlite_insert(backend: Backend, rows: Sequence[Row], commit: int) -> float:
    """executemany into a WAL + synchronous=FULL copy of the readings table (same DDL),
    ``commit`` rows per transaction; returns the seconds it took."""
    server = sqlite3.connect(str(backend.sqlite_path))
    try:
        (ddl,) = server.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'readings'"
        ).fetchone()
    finally:
        server.close()
    conn = _sqlite(str(backend.workdir / "raw.db"))
    try:
        conn.execute(ddl.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
        t0 = time.perf_counter()
        for chunk in _chunks(rows, commit):
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?)", chunk)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
    finally:
        conn.close()
    return elapsed


def sqlite_aggregate(backend: Backend, q: QueryRange, repeat: int) -> list[float]:
    conn = _sqlite(str(backend.sqlite_path))
    out: list[float] = []
    try:
        for i in range(repeat + WARMUPS):
            t0 = time.perf_counter()
            rows = conn.execute(SQLITE_AGG, (q.width_us, q.width_us, *q.args())).fetchall()
            if i >= WARMUPS:
                out.append(time.perf_counter() - t0)
            assert len(rows) == QUERY_BUCKETS, len(rows)
    finally:
        conn.close()
    return out


# ---------------------------------------------------------------- PostgreSQL


async def pg_load_query_series(backend: Backend, q: QueryRange) -> float:
    """1M readings generated server-side into the server's schema, and the series' latest
    value (the rollup pass finds series there), then VACUUM ANALYZE (the state autovacuum
    leaves a table in)."""
    t0 = time.perf_counter()
    conn = await backend.pg_connect()
    try:
        await conn.execute(
            "INSERT INTO readings (device_id, metric, ts, value) "
            "SELECT $1, $2, $3::bigint + g * $4::bigint, (g % 1000) / 10.0 "
            "FROM generate_series(0, $5::int - 1) AS g",
            q.device_id,
            QUERY_METRIC,
            q.start_us,
            QUERY_STEP_US,
            QUERY_ROWS,
        )
        latest = (q.device_id, QUERY_METRIC, *_last(q))
        await conn.execute("INSERT INTO device_latest VALUES ($1, $2, $3, $4)", *latest)
        await conn.execute("VACUUM ANALYZE readings")
    finally:
        await conn.close()
    return time.perf_counter() - t0


async def pg_insert(backend: Backend, rows: Sequence[Row], commit: int) -> float:
    """copy_records_to_table into an identical readings table (LIKE ... INCLUDING ALL)
    in its own schema, ``commit`` rows per transaction, synchronous_commit on."""
    conn = await backend.pg_connect(backend.raw_schema)
    raw = f'"{backend.raw_schema}"'
    try:
        await conn.execute("SET synchronous_commit = on")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {raw}")
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS {raw}.readings (LIKE "{backend.schema}".readings '
            "INCLUDING ALL)"
        )
        t0 = time.perf_counter()
        for chunk in _chunks(rows, commit):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "readings", records=chunk, schema_name=backend.raw_schema
                )
        elapsed = time.perf_counter() - t0
    finally:
        await conn.close()
    return elapsed


async def pg_aggregate(
    backend: Backend, q: QueryRange, repeat: int, *, custom: bool
) -> list[float]:
    """The server's statement, prepared once and re-run, as asyncpg runs it. After five runs
    PostgreSQL may switch a prepared statement to its generic plan; the six warm-ups get past
    that, as a long-running server's pooled connections have. ``custom`` forces custom plans."""
    conn = await backend.pg_connect()
    out: list[float] = []
    try:
        if custom:
            await conn.execute("SET plan_cache_mode = force_custom_plan")
        stmt = await conn.prepare(PG_AGG)
        for i in range(repeat + WARMUPS):
            t0 = time.perf_counter()
            rows = await stmt.fetch(q.width_us, *q.args())
            if i >= WARMUPS:
                out.append(time.perf_counter() - t0)
            assert len(rows) == QUERY_BUCKETS, len(rows)
    finally:
        await conn.close()
    return out
