"""The PostgreSQL batch writer: COPY, the only path fast enough for telemetry.

It runs on a thread of its own, with its own event loop and connection: a
batch takes five round trips or more, and on the API's busy loop each of them
would wait behind HTTP work, doubling the commit time and so halving ingest.

A small real-time batch is one statement, one round trip: that one goes from
the caller's loop on a connection of its own, since the hop to the thread and
back (about 0.8 ms of wake-ups on a busy 2-core machine) cost more than the
round trip and left the API idle a third of the time under single readings.

Fast path: COPY straight into ``readings``. A unique violation means some
readings are already stored (a resend): the transaction is rolled back and run
again through a staging table with ``ON CONFLICT DO NOTHING``, which tells
exactly which readings were new.

Every commit has a deadline: past it, its connection is terminated and the
batch fails with StorageTimeout. A silent network partition would otherwise
hold it, and every submission behind it, for the whole outage. The commit may
or may not have happened; its senders are told it did not, and the reading
key makes their retry land once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from telehub.errors import StorageTimeout
from telehub.storage import late_readings
from telehub.storage.rows import Batch, Row, Written, latest_wins

_COLUMNS = ["device_id", "metric", "ts", "value"]
# What a connection that must be replaced raises.
_BROKEN_CONNECTION = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)


class PgBatchWriter:
    def __init__(
        self,
        *,
        connect: Callable[[], Awaitable[Any]],
        commit_timeout: float,
        close_timeout: float,
        late_margin_us: int,
        one_statement_rows: int,
    ) -> None:
        """``connect`` opens a connection (storage/pg_connect.py); a commit not answered
        within ``commit_timeout`` seconds fails; closing waits ``close_timeout`` at most.
        Batches of fewer than ``one_statement_rows`` readings may go in one statement."""
        self._connect = connect
        self._commit_timeout = commit_timeout
        self._close_timeout = close_timeout
        self._late_margin_us = late_margin_us
        self._one_statement_rows = one_statement_rows
        self._conn: Any = None  # the thread's
        self._inline: Any = None  # the caller's loop's, for one-statement batches
        self._loop: asyncio.AbstractEventLoop | None = None  # the thread's, once started
        self._thread: threading.Thread | None = None

    async def write(self, batch: Batch) -> Written:
        """Commit the batch; tell which readings were new and which devices are gone."""
        if self._fits_one_statement(batch):
            return await self._write_inline(batch)
        done = asyncio.run_coroutine_threadsafe(self._write(batch), self._thread_loop())
        return await asyncio.wrap_future(done)

    def _thread_loop(self) -> asyncio.AbstractEventLoop:
        """The writer thread's loop, started by the first batch that needs it."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="telehub-pg-writer", daemon=True
            )
            self._thread.start()
        return self._loop

    def _fits_one_statement(self, batch: Batch) -> bool:
        """Small, readings only, and nothing old enough to touch rollups (late_readings.py)."""
        return (
            0 < len(batch.rows) < self._one_statement_rows
            and not batch.state
            and not late_readings.candidates(batch, None, self._late_margin_us)
        )

    async def _write_inline(self, batch: Batch) -> Written:
        pg = self._inline
        if pg is None or pg.is_closed():
            pg = self._inline = await self._connect()
        try:
            return await self._before_deadline(pg, _write_one_statement(pg, batch))
        except (StorageTimeout, *_BROKEN_CONNECTION):
            pg.terminate()  # replaced on the next batch
            self._inline = None
            raise

    async def _before_deadline(self, pg: Any, commit: Awaitable[Written]) -> Written:
        """``commit`` on ``pg``; at the deadline ``pg`` is terminated and StorageTimeout raised.

        Terminated, not cancelled: a cancelled asyncpg call sends a cancel request
        and a transaction block rolls back, both of which would wait on the same
        silent network. One timer per commit, no round trip.
        """
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            pg.terminate()

        timer = asyncio.get_running_loop().call_later(self._commit_timeout, expire)
        try:
            return await commit
        except Exception as exc:
            if expired:
                raise StorageTimeout(
                    f"the database did not answer the commit within {self._commit_timeout:g} s; "
                    "it may or may not have been stored (a resent reading is stored once)"
                ) from exc
            raise
        finally:
            timer.cancel()

    def close(self) -> None:
        if self._inline is not None:
            self._inline.terminate()  # idle between batches: nothing is cut short
            self._inline = None
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._thread = None

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close(timeout=self._close_timeout)
            except _BROKEN_CONNECTION:
                conn.terminate()  # a database gone silent does not see it go

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        return self._conn

    async def _write(self, batch: Batch) -> Written:
        pg = await self._connection()
        try:
            return await self._before_deadline(pg, self._transactions(pg, batch))
        except (StorageTimeout, *_BROKEN_CONNECTION):
            # A broken connection is replaced on the next batch (the Ingestor retries).
            await self._discard()
            raise

    async def _transactions(self, pg: Any, batch: Batch) -> Written:
        try:
            return await self._transaction(pg, batch, resend=False)
        except asyncpg.UniqueViolationError:
            # Some readings are stored already: the whole transaction again, through
            # the staging table (a savepoint instead would cost every batch 2 round trips).
            return await self._transaction(pg, batch, resend=True)

    async def _transaction(self, pg: Any, batch: Batch, *, resend: bool) -> Written:
        """One transaction, few round trips: each costs the writer thread a GIL hand-off."""
        async with pg.transaction():
            # First, so the device rows stay locked until commit: a concurrent
            # delete waits for this batch, then removes what it wrote.
            present = await pg.fetch(_LOCK_DEVICES_SET_LATEST, *_head(batch))
            gone = set(batch.device_ids) - {row[0] for row in present}
            if gone:
                batch = batch.without(gone)
            inserted = await (_insert_resent(pg, batch) if resend else _copy(pg, batch))
            if batch.state:
                await pg.execute(
                    _upsert_unnest("device_state", "key", "json"), *_columns(batch.state)
                )
            # Last: after the device rows are locked (storage/rollups.py tells why).
            merged = await _merge_late(
                pg, late_readings.candidates(batch, inserted, self._late_margin_us)
            )
        keys = None if inserted is None else [(r[0], r[1], r[2]) for r in inserted]
        return Written(keys, gone, merged, "postgres-resend" if resend else "postgres-copy")

    async def _discard(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None


# The head of both paths' first statement: the batch's device rows stamped (and so
# locked), then the latest values of those that still exist, by timestamp.
_PRESENT = (
    "WITH present AS ("
    "UPDATE devices SET last_seen_us = $1 WHERE id = ANY($2::varchar[]) RETURNING id), "
)
_LATEST = (
    "latest AS ("
    "INSERT INTO device_latest (device_id, metric, ts, value) SELECT l.* FROM "
    "unnest($3::varchar[], $4::varchar[], $5::bigint[], $6::float8[]) "
    "AS l(device_id, metric, ts, value) WHERE l.device_id IN (SELECT id FROM present) "
    + latest_wins("device_latest", "metric")
    + ") "
)
# The transaction's first statement: devices stamped (and locked), latest values set
# for those that still exist, which it returns.
_LOCK_DEVICES_SET_LATEST = _PRESENT + _LATEST + "SELECT id FROM present"
# The whole of a small batch in one autocommitted statement, one round trip:
# a single reading's commit is mostly round trips, each waking this thread and
# the server. Same effects as the transaction path: device rows updated (and
# locked) first, readings of deleted devices dropped, duplicates skipped and
# reported through RETURNING.
_ONE_STATEMENT = (
    _PRESENT + _LATEST + ", new AS ("
    "INSERT INTO readings (device_id, metric, ts, value) SELECT r.* FROM "
    "unnest($7::varchar[], $8::varchar[], $9::bigint[], $10::float8[]) "
    "AS r(device_id, metric, ts, value) WHERE r.device_id IN (SELECT id FROM present) "
    "ON CONFLICT DO NOTHING RETURNING device_id, metric, ts, value"
    ") SELECT id, NULL::varchar, NULL::bigint, NULL::float8 FROM present "
    "UNION ALL SELECT device_id, metric, ts, value FROM new"
)


async def _write_one_statement(pg: Any, batch: Batch) -> Written:
    out = await pg.fetch(_ONE_STATEMENT, *_head(batch), *_columns(batch.rows))
    present = {r[0] for r in out if r[1] is None}
    new = [(r[0], r[1], r[2]) for r in out if r[1] is not None]
    gone = set(batch.device_ids) - present
    stored = len(batch.rows) if not gone else sum(1 for r in batch.rows if r[0] in present)
    return Written(None if len(new) == stored else new, gone, path="postgres-one-statement")


def _columns(rows: list[Row]) -> tuple[list[Any], ...]:
    return tuple(list(column) for column in zip(*rows, strict=True))


def _head(batch: Batch) -> tuple[Any, ...]:
    """The parameters of ``_PRESENT`` and ``_LATEST``: $1 to $6."""
    latest = _columns(batch.latest) if batch.latest else ([], [], [], [])
    return (batch.received_us, batch.device_ids, *latest)


def _upsert_unnest(table: str, key: str, value_type: str) -> str:
    """One set-based upsert from arrays: one round trip, however many series."""
    return (
        f"INSERT INTO {table} (device_id, {key}, ts, value) "
        f"SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::bigint[], $4::{value_type}[]) "
        + latest_wins(table, key)
    )


async def _copy(pg: Any, batch: Batch) -> None:
    """The readings, none of them stored before (else UniqueViolationError): None means all new."""
    if batch.rows:
        await pg.copy_records_to_table("readings", records=batch.rows, columns=_COLUMNS)


async def _insert_resent(pg: Any, batch: Batch) -> list[Row]:
    """The readings that were not stored yet, through a staging table."""
    if not batch.rows:
        return []
    await pg.execute(
        "CREATE TEMP TABLE IF NOT EXISTS readings_staging "
        "(device_id varchar(64), metric varchar(64), ts bigint, value float8) "
        "ON COMMIT DELETE ROWS"
    )
    await pg.copy_records_to_table("readings_staging", records=batch.rows, columns=_COLUMNS)
    rows = await pg.fetch(
        "INSERT INTO readings (device_id, metric, ts, value) "
        "SELECT device_id, metric, ts, value FROM readings_staging "
        "ON CONFLICT DO NOTHING RETURNING device_id, metric, ts, value"
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


# FOR SHARE, in key order: a build step holding a row FOR UPDATE makes this wait, and
# the row's version after the step's commit is what it returns.
_PROGRESS = (
    "SELECT p.device_id, p.metric, p.width_us, p.done_until_us FROM rollup_progress p "
    "JOIN unnest($1::varchar[], $2::varchar[]) AS s(device_id, metric) "
    "ON p.device_id = s.device_id AND p.metric = s.metric "
    "ORDER BY p.device_id, p.metric, p.width_us FOR SHARE OF p"
)
_MERGE = (
    late_readings.INSERT_PARTIALS
    + "SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::bigint[], $4::bigint[], "
    "$5::bigint[], $6::float8[], $7::float8[], $8::float8[])" + late_readings.PG_ADD
)


async def _merge_late(pg: Any, rows: list[Row]) -> int:
    """Add late readings to the rollups built past them; how many were late."""
    if not rows:
        return 0
    series = late_readings.series_of(rows)
    found = await pg.fetch(_PROGRESS, [s[0] for s in series], [s[1] for s in series])
    done: late_readings.Done = {(r[0], r[1], r[2]): r[3] for r in found}
    partials, merged = late_readings.partials(rows, done)
    if partials:
        await pg.execute(_MERGE, *(list(c) for c in zip(*partials, strict=True)))
    return merged
