"""The SQLite batch writer: one thread, one connection, one hop per batch.

Going through aiosqlite costs an event-loop round trip per statement; a batch
is several statements plus a durable COMMIT, so it runs whole on a dedicated
thread instead, with its own connection (same WAL, same synchronous=FULL).
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any

from telehub.storage import late
from telehub.storage.batch import Batch, Row, Written, latest_wins

# SQLite allows 32766 bound parameters per statement; a reading takes four.
_ROWS_PER_STATEMENT = 8000


class SqliteBatchWriter:
    def __init__(self, path: str, *, late_margin_us: int) -> None:
        self._path = path
        self._late_margin_us = late_margin_us
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="telehub-sqlite")

    async def write(self, batch: Batch) -> Written:
        """Commit the batch; tell which readings were new and which devices are gone."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._write, batch)

    def close(self) -> None:
        self._thread.submit(self._close).result()
        self._thread.shutdown()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            self._conn = conn
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _write(self, batch: Batch) -> Written:
        conn = self._connection()
        # IMMEDIATE takes the write lock up front (waiting up to busy_timeout),
        # so the batch cannot fail half-way on a lock upgrade, and no device can
        # be deleted between the check below and the commit.
        conn.execute("BEGIN IMMEDIATE")
        try:
            present = conn.execute(
                "UPDATE devices SET last_seen_us = ? WHERE id IN "
                f"({','.join('?' * len(batch.device_ids))}) RETURNING id",
                [batch.received_us, *batch.device_ids],
            ).fetchall()
            gone = set(batch.device_ids) - {row[0] for row in present}
            if gone:
                batch = batch.without(gone)
            inserted = self._insert(conn, batch)
            for start, count in _chunks(len(batch.latest)):
                conn.execute(
                    _upsert("device_latest", "metric", count),
                    _flat(batch.latest[start : start + count]),
                )
            for start, count in _chunks(len(batch.state)):
                conn.execute(
                    _upsert("device_state", "key", count),
                    _flat(batch.state[start : start + count]),
                )
            merged = _merge_late(conn, late.candidates(batch, inserted, self._late_margin_us))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        keys = None if inserted is None else [(r[0], r[1], r[2]) for r in inserted]
        return Written(keys, gone, merged)

    @staticmethod
    def _insert(conn: sqlite3.Connection, batch: Batch) -> list[Row] | None:
        # Fast path: multi-row INSERTs, one statement per 8000 readings, so the
        # thread takes the GIL back once per statement, not once per row. A key
        # already stored (a resend) aborts it; then undo it and learn which
        # readings are new (and with which values) from RETURNING.
        conn.execute("SAVEPOINT fast")
        try:
            for start, count in _chunks(len(batch.rows)):
                conn.execute(_INSERT + _values(count), _flat(batch.rows[start : start + count]))
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO fast")
        else:
            conn.execute("RELEASE fast")
            return None
        conn.execute("RELEASE fast")
        inserted: list[Row] = []
        for start, count in _chunks(len(batch.rows)):
            sql = (
                _INSERT
                + _values(count)
                + " ON CONFLICT DO NOTHING RETURNING device_id, metric, ts, value"
            )
            rows = conn.execute(sql, _flat(batch.rows[start : start + count])).fetchall()
            inserted.extend(rows)
        return inserted


_INSERT = "INSERT INTO readings (device_id, metric, ts, value) VALUES "
# Parameters per statement: two per series, eight per rollup partial.
_SERIES_PER_STATEMENT = 8000
_PARTIALS_PER_STATEMENT = 4000


def _merge_late(conn: sqlite3.Connection, rows: list[Row]) -> int:
    """Add late readings to the rollups built past them; how many were late.

    The transaction holds SQLite's write lock, so no build pass runs meanwhile.
    """
    if not rows:
        return 0
    series = late.series_of(rows)
    done: late.Done = {}
    for start in range(0, len(series), _SERIES_PER_STATEMENT):
        chunk = series[start : start + _SERIES_PER_STATEMENT]
        found = conn.execute(
            "SELECT device_id, metric, width_us, done_until_us FROM rollup_progress "
            f"WHERE (device_id, metric) IN (VALUES {','.join(['(?,?)'] * len(chunk))})",
            list(chain.from_iterable(chunk)),
        )
        done.update(((d, m, w), until) for d, m, w, until in found)
    partials, merged = late.partials(rows, done)
    for start in range(0, len(partials), _PARTIALS_PER_STATEMENT):
        some = partials[start : start + _PARTIALS_PER_STATEMENT]
        conn.execute(
            late.INSERT_PARTIALS
            + "VALUES "
            + ",".join(["(?,?,?,?,?,?,?,?)"] * len(some))
            + late.SQLITE_ADD,
            list(chain.from_iterable(some)),
        )
    return merged


def _upsert(table: str, key: str, count: int) -> str:
    return (
        f"INSERT INTO {table} (device_id, {key}, ts, value) VALUES {_values(count)} "
        + latest_wins(table, key)
    )


def _values(count: int) -> str:
    return ",".join(["(?,?,?,?)"] * count)


def _chunks(total: int) -> list[tuple[int, int]]:
    return [
        (start, min(_ROWS_PER_STATEMENT, total - start))
        for start in range(0, total, _ROWS_PER_STATEMENT)
    ]


def _flat(rows: list[Row]) -> list[Any]:
    return list(chain.from_iterable(rows))
