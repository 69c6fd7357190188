"""The raw-driver side: bulk loads, the raw tables, and the batch-insert baselines
(per-row commits: _raw_commits.py; query forms: _raw_query.py)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import asyncpg

from _harness import Backend
from _load import Row
from telehub.core.rollups import RollupStats
from telehub.hub import open_hub
from telehub.process_tuning import tune_interpreter

QUERY_ROWS = 1_000_000
QUERY_METRIC = "q"
QUERY_STEP_US = 1_000_000  # one reading a second: 1M readings span ~11.6 days
QUERY_BUCKETS = 500
WARMUPS = 6  # > 5: PostgreSQL's custom-plan runs of a prepared statement


@dataclass(frozen=True)
class QueryRange:
    device_id: str
    start_us: int
    end_us: int
    width_us: int


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
        tune_interpreter()  # as in the process that runs it (telehub serve)
        stats = await hub.rollups.run_pass()
    if backend.is_pg:
        conn = await backend.pg_connect()
        try:
            await conn.execute("VACUUM ANALYZE rollups")
        finally:
            await conn.close()
    return stats


# ---------------------------------------------------------------- SQLite


def sqlite_connect(path: str) -> sqlite3.Connection:
    """Autocommit (each statement its own transaction unless BEGIN), with the durability
    of every hub connection: WAL and synchronous=FULL (storage/database.py)."""
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
    conn = sqlite_connect(str(backend.sqlite_path))
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


def sqlite_raw_table(backend: Backend) -> sqlite3.Connection:
    """A connection to ``raw.db`` beside the server's database, holding a readings table
    made by the same DDL: the raw baselines write there, never into the server's."""
    server = sqlite3.connect(str(backend.sqlite_path))
    try:
        (ddl,) = server.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'readings'"
        ).fetchone()
    finally:
        server.close()
    conn = sqlite_connect(str(backend.workdir / "raw.db"))
    conn.execute(ddl.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
    return conn


def sqlite_insert(backend: Backend, rows: Sequence[Row], commit: int) -> float:
    """executemany into a WAL + synchronous=FULL copy of the readings table (same DDL),
    ``commit`` rows per transaction; returns the seconds it took."""
    conn = sqlite_raw_table(backend)
    try:
        t0 = time.perf_counter()
        for chunk in _chunks(rows, commit):
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?)", chunk)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
    finally:
        conn.close()
    return elapsed


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


async def pg_raw_table(backend: Backend) -> asyncpg.Connection:
    """A connection to the raw schema, holding a readings table like the server's
    (LIKE ... INCLUDING ALL), synchronous_commit on: the raw baselines write there."""
    conn = await backend.pg_connect(backend.raw_schema)
    raw = f'"{backend.raw_schema}"'
    try:
        await conn.execute("SET synchronous_commit = on")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {raw}")
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS {raw}.readings (LIKE "{backend.schema}".readings '
            "INCLUDING ALL)"
        )
    except BaseException:
        await conn.close()
        raise
    return conn


async def pg_insert(backend: Backend, rows: Sequence[Row], commit: int) -> float:
    """copy_records_to_table into an identical readings table (LIKE ... INCLUDING ALL)
    in its own schema, ``commit`` rows per transaction, synchronous_commit on."""
    conn = await pg_raw_table(backend)
    try:
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
