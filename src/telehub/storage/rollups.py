"""Building rollups: each series' ``done_until_us`` advanced a bounded step at a time.

One step is one transaction on one series: lock its progress rows, aggregate
the readings from the old ``done_until_us`` on (at most about ``STEP_ROWS``
of them) into 10 s rows and the 10 s rows into 1 h rows, move the progress
rows, commit. A year of backlog is many short transactions, never one giant one.

Why a concurrent writer cannot make a rollup inexact (PostgreSQL, READ COMMITTED;
SQLite serialises writers, so there both sides simply see each other's commits):

- The writer merges a reading it inserted into the rollups of each width
  whose ``done_until_us`` is above the reading's ts, after reading those
  progress rows ``FOR SHARE`` in the same transaction. The builder takes its
  progress rows ``FOR UPDATE`` *before* its INSERT ... SELECT statements.
- Writer first: the builder's lock waits for the writer's commit. Each of the
  builder's later statements takes a fresh snapshot, so its INSERT ... SELECT
  sees the writer's readings; the writer saw the old ``done_until_us`` and
  merged none of the readings the builder now aggregates.
- Builder first: the writer's ``FOR SHARE`` waits for the builder's commit
  and then returns the row's new version (READ COMMITTED re-reads a row that
  changed while it waited), so the writer merges every reading below the new
  ``done_until_us``; the builder's snapshot could not see those readings, as
  the writer had not committed.
- Both take a series' rows in one statement ordered by width, so they cannot
  deadlock on them. The writer skips all of this for a batch whose readings
  are all newer than ``received_us - lag/2``: the builder never goes past
  ``now - lag``, which leaves half the lag for clock skew between processes
  and for a writer's transaction to commit.
- A progress row must exist before a writer could need it: a writer that
  finds none merges nothing, and an uncommitted row is invisible to it. So
  rows are created apart (``prepare``), at ``done_until_us = 0``, under a
  ``FOR SHARE`` lock on the device row. The writer's first statement updates
  that device row, so a writer holding it has its readings committed before
  the rows exist, and a later writer waits for them and then sees them.
- A device delete removes the progress rows before the rollups: a step
  holding them makes the delete wait, and the delete then finds the rows
  that step inserted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telehub.core.ports import RollupStep
from telehub.domain.rollups import ROLLUP_WIDTHS_US

# Source rows (readings, or 10 s rows for the 1 h level) aggregated per step, about:
# tens of milliseconds of work, so a SQLite writer waits that long at most.
STEP_ROWS = 50_000

_SERIES = text("SELECT device_id, metric FROM device_latest ORDER BY device_id, metric")
_UNPREPARED = text(
    "SELECT l.device_id, l.metric FROM device_latest l WHERE (SELECT count(*) "
    "FROM rollup_progress p WHERE p.device_id = l.device_id AND p.metric = l.metric) < :n "
    "ORDER BY l.device_id, l.metric"
)
_DEVICE = "SELECT id FROM devices WHERE id = :device"
_CREATE = text(
    "INSERT INTO rollup_progress (device_id, metric, width_us, done_until_us) "
    "VALUES (:device, :metric, :width, 0) ON CONFLICT DO NOTHING"
)
_PROGRESS = (
    "SELECT width_us, done_until_us FROM rollup_progress "
    "WHERE device_id = :device AND metric = :metric ORDER BY width_us"
)
_MOVE = text(
    "UPDATE rollup_progress SET done_until_us = :done "
    "WHERE device_id = :device AND metric = :metric AND width_us = :width"
)
_W = "CAST(:width AS BIGINT)"
# What a step reads: readings for the finest width, the next finer width's rows above it.
_FROM_READINGS = (
    "ts",
    "FROM readings WHERE device_id = :device AND metric = :metric",
    "count(*), sum(value), min(value), max(value)",
)
_FROM_ROLLUPS = (
    "start_us",
    "FROM rollups WHERE device_id = :device AND metric = :metric AND width_us = :source",
    "sum(count), sum(sum), min(min), max(max)",
)


class SqlRollupStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pg = engine.dialect.name == "postgresql"
        self._late_listeners: list[Callable[[int], None]] = []

    def on_late(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(n)`` whenever a commit merged ``n`` late readings into rollups."""
        self._late_listeners.append(listener)

    def count_late(self, merged: int) -> None:
        for listener in self._late_listeners:
            listener(merged)

    async def series(self) -> list[tuple[str, str]]:
        """Every (device, metric) that has readings, in key order."""
        async with self._engine.connect() as conn:
            return [(r.device_id, r.metric) for r in await conn.execute(_SERIES)]

    async def prepare(self) -> int:
        """Create the missing progress rows (one short transaction per device); how many series."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_UNPREPARED, {"n": len(ROLLUP_WIDTHS_US)})).all()
        by_device: dict[str, list[str]] = defaultdict(list)
        for device_id, metric in rows:
            by_device[device_id].append(metric)
        for device_id, metrics in by_device.items():
            async with self._engine.connect() as conn:
                await self._begin(conn)
                # On PostgreSQL this waits for writers of the device, and holds new ones
                # until the commit (see the module's docstring).
                found = await conn.execute(
                    text(_DEVICE + (" FOR SHARE" if self._pg else "")), {"device": device_id}
                )
                if found.first() is None:
                    continue  # deleted meanwhile; leaving the block rolls back
                await conn.execute(
                    _CREATE,
                    [
                        {"device": device_id, "metric": m, "width": w}
                        for m in metrics
                        for w in ROLLUP_WIDTHS_US
                    ],
                )
                await conn.commit()
        return len(rows)

    async def step(self, device_id: str, metric: str, *, until_us: int) -> RollupStep:
        """Advance one series toward ``until_us`` (floored to each width) in one transaction."""
        key = {"device": device_id, "metric": metric}
        async with self._engine.connect() as conn:
            await self._begin(conn)
            lock = _PROGRESS + (" FOR UPDATE" if self._pg else "")
            done = {int(w): int(d) for w, d in await conn.execute(text(lock), key)}
            if set(done) != set(ROLLUP_WIDTHS_US):
                return RollupStep(0, True)  # deleted, or not prepared yet: nothing to do
            written = 0
            finished = True
            source: int | None = None
            for width in ROLLUP_WIDTHS_US:
                final = until_us // width * width
                # A coarser width is built from the finer one, as far as that one is done.
                target = final if source is None else min(final, done[source] // width * width)
                old = done[width]
                if old < target:
                    new, buckets = await _advance(conn, key, width, source, old, target)
                    await conn.execute(_MOVE, {**key, "width": width, "done": new})
                    done[width] = new
                    written += buckets
                finished = finished and done[width] >= final
                source = width
            await conn.commit()
        return RollupStep(written, finished)

    async def _begin(self, conn: AsyncConnection) -> None:
        if self._pg:
            # Rollups are derived data, and a writer's durable commit flushes the WAL
            # up to it, so a builder commit a late merge depends on is durable too.
            await conn.execute(text("SET LOCAL synchronous_commit = off"))
        else:
            # The write lock up front: a step serialises with the batch writer.
            await conn.exec_driver_sql("BEGIN IMMEDIATE")


async def _advance(
    conn: AsyncConnection,
    key: dict[str, Any],
    width: int,
    source: int | None,
    lo: int,
    hi: int,
) -> tuple[int, int]:
    """Aggregate ``[lo, new)`` into rows of ``width``; ``new <= hi`` bounds the work."""
    ts, where, aggregates = _FROM_READINGS if source is None else _FROM_ROLLUPS
    params = {**key, "width": width, "source": source, "lo": lo, "hi": hi}
    in_range = f"{where} AND {ts} >= :lo AND {ts} < :hi"
    bound = (
        await conn.execute(
            text(f"SELECT {ts} {in_range} ORDER BY {ts} LIMIT 1 OFFSET {STEP_ROWS}"), params
        )
    ).scalar()
    # Whole buckets only; at least one, however many readings it holds.
    new = hi if bound is None else max(int(bound) // width * width, lo + width)
    result = await conn.execute(
        text(
            "INSERT INTO rollups (device_id, metric, width_us, start_us, count, sum, min, max) "
            f"SELECT device_id, metric, {_W}, {ts} / {_W} * {_W}, {aggregates} "
            f"{where} AND {ts} >= :lo AND {ts} < :new GROUP BY device_id, metric, 4"
        ),
        {**params, "new": new},
    )
    return new, max(result.rowcount, 0)
