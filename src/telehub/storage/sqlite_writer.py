"""The SQLite batch writer: one hop per batch, or none for a small one.

Going through aiosqlite costs an event-loop round trip per statement; a batch
is several statements plus a durable COMMIT, so it runs whole on a dedicated
thread instead, with its own connection (same WAL, same synchronous=FULL).

A small batch (a few devices' single readings) is written on the calling
thread, the event loop's: handing it to the writer thread and back cost about
0.8 ms of wake-ups on a busy 2-core machine, several times the commit itself
(about 0.2 ms with its fsync on an SSD), and left the API idle a third of the
time under single-reading load. Two guards keep the loop from blocking: the
inline connection never waits for the write lock (busy_timeout 0: when another
connection holds it, the batch goes to the thread, which may wait), and where
commits are slow (an SD card's fsync), one inline commit over budget sends the
next batches to the thread for a while.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any

from telehub.storage import late_readings
from telehub.storage.database import DURABLE_SQLITE_PRAGMAS
from telehub.storage.rows import Batch, Row, Written, latest_wins

# SQLite allows 32766 bound parameters per statement; a reading takes four.
_ROWS_PER_STATEMENT = 8000
# Of the newest inline commit in the moving average of their durations, so the odd
# WAL checkpoint does not pause inline commits by itself.
_INLINE_WEIGHT = 0.05


class SqliteBatchWriter:
    def __init__(
        self,
        path: str,
        *,
        late_margin_us: int,
        inline_values: int,
        inline_budget_seconds: float,
        inline_pause_batches: int,
    ) -> None:
        """Batches of at most ``inline_values`` values are written inline while inline
        commits average under ``inline_budget_seconds``; over it, the next
        ``inline_pause_batches`` go to the thread (core/batching.py)."""
        self._path = path
        self._late_margin_us = late_margin_us
        self._inline_values = inline_values
        self._inline_budget_s = inline_budget_seconds
        self._inline_pause = inline_pause_batches
        self._conn: sqlite3.Connection | None = None  # the thread's
        self._inline: sqlite3.Connection | None = None  # the event loop's
        self._inline_paused = 0  # batches still to send to the thread
        self._inline_average_s = 0.0
        self._thread: ThreadPoolExecutor | None = None  # started by the first batch for it

    async def write(self, batch: Batch) -> Written:
        """Commit the batch; tell which readings were new and which devices are gone."""
        if self._inline_paused:
            self._inline_paused -= 1
        elif len(batch.rows) + len(batch.state) <= self._inline_values:
            written = self._write_inline(batch)
            if written is not None:
                return written
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="telehub-sqlite")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._write, batch)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.submit(self._close).result()
            self._thread.shutdown()
            self._thread = None
        if self._inline is not None:
            self._inline.close()
            self._inline = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = _connect(self._path, busy_timeout_ms=10_000)
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _write_inline(self, batch: Batch) -> Written | None:
        """The batch committed on this thread, or None if the write lock is taken."""
        if self._inline is None:
            self._inline = _connect(self._path, busy_timeout_ms=0)
        started = time.perf_counter()
        try:
            self._inline.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # busy: the thread's connection may wait for it
            return None
        written = self._in_transaction(self._inline, batch, path="sqlite-inline")
        took = time.perf_counter() - started
        self._inline_average_s += _INLINE_WEIGHT * (took - self._inline_average_s)
        if self._inline_average_s > self._inline_budget_s:
            self._inline_paused = self._inline_pause
            self._inline_average_s = 0.0  # a fresh start when inline writes resume
        return written

    def _write(self, batch: Batch) -> Written:
        conn = self._connection()
        # IMMEDIATE takes the write lock up front (waiting up to busy_timeout),
        # so the batch cannot fail half-way on a lock upgrade, and no device can
        # be deleted between the check below and the commit.
        conn.execute("BEGIN IMMEDIATE")
        return self._in_transaction(conn, batch, path="sqlite-thread")

    def _in_transaction(self, conn: sqlite3.Connection, batch: Batch, *, path: str) -> Written:
        """Write the batch in the transaction just begun, and commit it."""
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
            merged = _merge_late(
                conn, late_readings.candidates(batch, inserted, self._late_margin_us)
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        keys = None if inserted is None else [(r[0], r[1], r[2]) for r in inserted]
        return Written(keys, gone, merged, path)

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
    series = late_readings.series_of(rows)
    done: late_readings.Done = {}
    for start in range(0, len(series), _SERIES_PER_STATEMENT):
        chunk = series[start : start + _SERIES_PER_STATEMENT]
        found = conn.execute(
            "SELECT device_id, metric, width_us, done_until_us FROM rollup_progress "
            f"WHERE (device_id, metric) IN (VALUES {','.join(['(?,?)'] * len(chunk))})",
            list(chain.from_iterable(chunk)),
        )
        done.update(((d, m, w), until) for d, m, w, until in found)
    partials, merged = late_readings.partials(rows, done)
    for start in range(0, len(partials), _PARTIALS_PER_STATEMENT):
        some = partials[start : start + _PARTIALS_PER_STATEMENT]
        conn.execute(
            late_readings.INSERT_PARTIALS
            + "VALUES "
            + ",".join(["(?,?,?,?,?,?,?,?)"] * len(some))
            + late_readings.SQLITE_ADD,
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


def _connect(path: str, *, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in DURABLE_SQLITE_PRAGMAS:
        conn.execute(pragma)
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    return conn
