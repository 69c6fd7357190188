"""The range queries' baselines: every reasonable raw SQL form of the same job, timed,
and the fastest kept (the GET is measured against that one, and the output says which).

Two jobs, on the series ``_raw.QueryRange`` loaded (1M readings, one rollup pass done):
- buckets: 500 x avg over the whole range. The raw forms read either the readings or
  the 10 s rollups the pass built (the rows the GET reads), with a GROUP BY or, on
  SQLite, one range scan per bucket (how the hub queries SQLite); on PostgreSQL with
  ORDER BY, or without it and sorted in Python (the planner may then hash the groups);
- points: the first 10,000 readings of the range in time order, ``SELECT ts, value``.

Each form runs through each driver that could serve it: SQLite via sqlite3 directly and
via aiosqlite (the hub's driver); PostgreSQL via an asyncpg prepared statement's
``fetch`` and via ``copy_from_query`` in binary (rows decoded, as an application would),
with custom plans as on the hub's connections. Screening runs each candidate after two
warm-ups, 3 to 15 times (about half a second's worth); the fastest by median then runs
as often as the GET does.
"""

from __future__ import annotations

import contextlib
import math
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiosqlite
import asyncpg

from _harness import Backend
from _load import quantile
from _raw import QUERY_METRIC, WARMUPS, QueryRange, sqlite_connect

POINTS = 10_000  # the API's largest limit
ROLLUP_WIDTH_US = 10_000_000  # the rollup width that tiles the benchmark's buckets
SCREEN_S = 0.5  # a candidate's screening: timed runs for this long (at least 3) …
SCREEN_MAX = 15  # … and at most this many

Query = Callable[[], Awaitable[int]]  # runs once, returns the rows it got

# ---------------------------------------------------------------- SQLite forms
_CTE = "WITH RECURSIVE b(k) AS (SELECT :lo UNION ALL SELECT k + :w FROM b WHERE k + :w < :hi) "
_SQLITE_BUCKETS = {
    "GROUP BY over readings": (
        "SELECT ts / :w * :w AS bucket, avg(value) FROM readings "
        "WHERE device_id = :d AND metric = :m AND ts >= :lo AND ts < :hi GROUP BY 1 ORDER BY 1"
    ),
    "range scan a bucket over readings": _CTE
    + "SELECT k, (SELECT avg(value) FROM readings WHERE device_id = :d AND metric = :m "
    "AND ts >= k AND ts < k + :w) FROM b",
    "GROUP BY over 10 s rollups": (
        "SELECT start_us / :w * :w AS bucket, sum(sum) / sum(count) FROM rollups "
        "WHERE device_id = :d AND metric = :m AND width_us = :rw "
        "AND start_us >= :lo AND start_us < :hi GROUP BY 1 ORDER BY 1"
    ),
    "range scan a bucket over 10 s rollups": _CTE
    + "SELECT k, (SELECT sum(sum) / sum(count) FROM rollups WHERE device_id = :d "
    "AND metric = :m AND width_us = :rw AND start_us >= k AND start_us < k + :w) FROM b",
}
_SQLITE_POINTS = (
    "SELECT ts, value FROM readings WHERE device_id = :d AND metric = :m "
    "AND ts >= :lo AND ts < :hi ORDER BY ts LIMIT :n"
)

# ---------------------------------------------------------------- PostgreSQL forms
# $1 width, $2 device, $3 metric, $4 from, $5 to, $6 rollup width. Without ORDER BY the
# planner may hash the groups (it cannot know there are only 500), and Python sorts them.
_PG_GROUPS = {
    "over readings": (
        "SELECT ts / $1::bigint * $1::bigint AS bucket, avg(value) AS value FROM readings "
        "WHERE device_id = $2 AND metric = $3 AND ts >= $4 AND ts < $5 GROUP BY 1"
    ),
    "over 10 s rollups": (
        "SELECT start_us / $1::bigint * $1::bigint AS bucket, "
        "sum(sum) / sum(count)::float8 AS value FROM rollups WHERE device_id = $2 "
        "AND metric = $3 AND width_us = $6 AND start_us >= $4 AND start_us < $5 GROUP BY 1"
    ),
}
_PG_BUCKETS = {
    f"GROUP BY {table}{how}": (sql + order, not order)
    for table, sql in _PG_GROUPS.items()
    for how, order in ((" + ORDER BY", " ORDER BY 1"), (", sorted in Python", ""))
}
_PG_POINTS = (
    "SELECT ts, value FROM readings WHERE device_id = $1 AND metric = $2 "
    "AND ts >= $3 AND ts < $4 ORDER BY ts LIMIT $5"
)
# COPY BINARY: 19-byte header, then per row int16 fields, int32 length + int8, int32 + float8.
_COPY_HEADER = 19
_COPY_ROW = struct.Struct(">hiqid")


def _copied_rows(data: bytes) -> list[tuple[int, int, int, int, float]]:
    body = data[_COPY_HEADER : len(data) - 2]  # the trailer: int16 -1
    return list(_COPY_ROW.iter_unpack(body))


@dataclass(frozen=True)
class Timed:
    label: str
    seconds: list[float]

    def ms(self, q: float) -> float:
        return 1000 * quantile(self.seconds, q)


@dataclass(frozen=True)
class Fastest:
    """The chosen form's timings, and every candidate's screening."""

    best: Timed
    screened: list[Timed]

    def describe(self) -> str:
        ranked = sorted(self.screened, key=lambda t: t.ms(0.5))
        return "; ".join(f"{t.label} {t.ms(0.5):,.1f} ms (x{len(t.seconds)})" for t in ranked)


async def _time(
    query: Query, expect: int, warmups: int, repeat: int, budget: float = math.inf
) -> list[float]:
    """``repeat`` timed runs after ``warmups``; fewer (but 3) once ``budget`` s are spent."""
    out: list[float] = []
    for i in range(warmups + repeat):
        t0 = time.perf_counter()
        got = await query()
        elapsed = time.perf_counter() - t0
        if got != expect:
            raise RuntimeError(f"a raw query returned {got} rows, expected {expect}")
        if i >= warmups:
            out.append(elapsed)
            if len(out) >= 3 and sum(out) >= budget:
                break
    return out


async def fastest(candidates: dict[str, Query], expect: int, repeat: int) -> Fastest:
    screened = [
        Timed(label, await _time(query, expect, 2, SCREEN_MAX, SCREEN_S))
        for label, query in candidates.items()
    ]
    best = min(screened, key=lambda t: t.ms(0.5))
    final = await _time(candidates[best.label], expect, WARMUPS, repeat)
    return Fastest(Timed(best.label, final), screened)


# ---------------------------------------------------------------- candidates


def _sqlite_params(q: QueryRange) -> dict[str, Any]:
    return {
        "w": q.width_us,
        "d": q.device_id,
        "m": QUERY_METRIC,
        "lo": q.start_us,
        "hi": q.end_us,
        "rw": ROLLUP_WIDTH_US,
        "n": POINTS,
    }


@contextlib.asynccontextmanager
async def sqlite_candidates(
    backend: Backend, q: QueryRange
) -> AsyncIterator[tuple[dict[str, Query], dict[str, Query]]]:
    """(bucket candidates, point candidates), each SQL form through sqlite3 and aiosqlite."""
    path = str(backend.sqlite_path)
    params = _sqlite_params(q)
    sync = sqlite_connect(path)
    try:
        async with aiosqlite.connect(path) as adb:

            def via_sqlite3(sql: str) -> Query:
                async def run() -> int:
                    return len(sync.execute(sql, params).fetchall())

                return run

            def via_aiosqlite(sql: str) -> Query:
                async def run() -> int:
                    return len(list(await adb.execute_fetchall(sql, params)))

                return run

            drivers = {"sqlite3": via_sqlite3, "aiosqlite": via_aiosqlite}
            buckets = {
                f"{form}, {driver}": make(sql)
                for form, sql in _SQLITE_BUCKETS.items()
                for driver, make in drivers.items()
            }
            points = {
                f"SELECT ts, value … LIMIT, {driver}": make(_SQLITE_POINTS)
                for driver, make in drivers.items()
            }
            yield buckets, points
    finally:
        sync.close()


@contextlib.asynccontextmanager
async def pg_candidates(
    backend: Backend, q: QueryRange
) -> AsyncIterator[tuple[dict[str, Query], dict[str, Query]]]:
    """(bucket candidates, point candidates), each SQL form via prepared fetch and COPY."""
    conn: asyncpg.Connection = await backend.pg_connect()
    try:
        await conn.execute("SET plan_cache_mode = force_custom_plan")
        base = (q.device_id, QUERY_METRIC, q.start_us, q.end_us)

        async def via_fetch(sql: str, args: tuple[Any, ...], sort: bool) -> Query:
            stmt = await conn.prepare(sql)

            async def run() -> int:
                rows = await stmt.fetch(*args)
                return len(sorted(rows, key=lambda r: r[0]) if sort else rows)

            return run

        async def via_copy(sql: str, args: tuple[Any, ...], sort: bool) -> Query:
            async def run() -> int:
                chunks: list[bytes] = []

                async def sink(chunk: bytes) -> None:
                    chunks.append(chunk)

                await conn.copy_from_query(sql, *args, output=sink, format="binary")
                rows = _copied_rows(b"".join(chunks))  # (fields, len, int8, len, float8)
                return len(sorted(rows, key=lambda r: r[2]) if sort else rows)

            return run

        drivers = {"asyncpg prepared fetch": via_fetch, "asyncpg COPY binary": via_copy}
        buckets, points = {}, {}
        for driver, make in drivers.items():
            for form, (sql, sort) in _PG_BUCKETS.items():
                args = (q.width_us, *base) + ((ROLLUP_WIDTH_US,) if "$6" in sql else ())
                buckets[f"{form}, {driver}"] = await make(sql, args, sort)
            points[f"SELECT ts, value … LIMIT, {driver}"] = await make(
                _PG_POINTS, (*base, POINTS), False
            )
        yield buckets, points
    finally:
        await conn.close()
