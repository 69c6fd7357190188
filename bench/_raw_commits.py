"""The single-POST storage baseline: the raw driver committing one row per request.

What a server without group commit would do for each single-reading POST, with the
hub's durability, at the concurrency the hub's clients offer that the database can use:
- SQLite: one connection (a database has one writer at a time; more connections only
  wait on its lock), an INSERT committed per row, WAL + synchronous=FULL;
- PostgreSQL: N asyncpg connections (N = the client count, at most the hub's pool
  size), each running a prepared INSERT in autocommit, synchronous_commit on.

Rows go into a copy of the readings table (``_raw.sqlite_raw_table``/``pg_raw_table``),
one device per connection, every timestamp new.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

from _harness import Backend, run_async
from _raw import pg_raw_table, sqlite_raw_table

INSERT_SQLITE = "INSERT INTO readings VALUES (?, ?, ?, ?)"
INSERT_PG = "INSERT INTO readings VALUES ($1, $2, $3, $4)"
WARM_ROWS = 20  # per connection, before the clock starts


@dataclass(frozen=True)
class Commits:
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


class RowCommits:
    """Per-row commits, round after round on the same table; timestamps never repeat."""

    def __init__(self, backend: Backend, connections: int) -> None:
        self.backend = backend
        self.connections = 1 if not backend.is_pg else connections
        self._ts = itertools.count(1)

    def describe(self) -> str:
        if self.backend.is_pg:
            return f"asyncpg, {self.connections} connections, a commit a row, synchronous_commit on"
        return "sqlite3, 1 connection, a commit a row, WAL + synchronous=FULL"

    def run(self, seconds: float) -> Commits:
        if self.backend.is_pg:
            commits: Commits = run_async(self._pg(seconds))
            return commits
        return self._sqlite(seconds)

    def _sqlite(self, seconds: float) -> Commits:
        conn = sqlite_raw_table(self.backend)
        try:
            for _ in range(WARM_ROWS):
                conn.execute(INSERT_SQLITE, ("raw-0", "t", next(self._ts), 1.0))
            rows, t0 = 0, time.perf_counter()
            deadline = t0 + seconds
            while time.perf_counter() < deadline:
                conn.execute(INSERT_SQLITE, ("raw-0", "t", next(self._ts), 1.0))
                rows += 1
            return Commits(rows, time.perf_counter() - t0)
        finally:
            conn.close()

    async def _pg(self, seconds: float) -> Commits:
        conns = [await pg_raw_table(self.backend) for _ in range(self.connections)]
        try:
            start, all_ready = asyncio.Event(), asyncio.Event()
            waiting = [len(conns)]
            deadline = [0.0]

            async def writer(k: int) -> int:
                conn, device = conns[k], f"raw-{k}"
                for _ in range(WARM_ROWS):
                    await conn.execute(INSERT_PG, device, "t", next(self._ts), 1.0)
                waiting[0] -= 1
                if not waiting[0]:
                    all_ready.set()
                await start.wait()
                rows = 0
                while time.perf_counter() < deadline[0]:
                    await conn.execute(INSERT_PG, device, "t", next(self._ts), 1.0)
                    rows += 1
                return rows

            tasks = [asyncio.create_task(writer(k)) for k in range(len(conns))]
            await all_ready.wait()  # every writer warmed up and at the start line
            t0 = time.perf_counter()
            deadline[0] = t0 + seconds
            start.set()
            counts = await asyncio.gather(*tasks)
            return Commits(sum(counts), time.perf_counter() - t0)
        finally:
            for conn in conns:
                await conn.close()
