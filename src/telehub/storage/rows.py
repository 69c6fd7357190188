"""One ingest batch, flattened into rows ready for either database's bulk path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import orjson

from telehub.domain.readings import Telemetry

Key = tuple[str, str, int]
Row = tuple[str, str, int, Any]


@dataclass(frozen=True, slots=True)
class Batch:
    rows: list[Row]
    latest: list[Row]
    state: list[Row]
    device_ids: list[str]
    received_us: int

    def without(self, gone: set[str]) -> Batch:
        """The batch less everything of devices deleted while it waited in the queue."""
        return Batch(
            rows=[r for r in self.rows if r[0] not in gone],
            latest=[r for r in self.latest if r[0] not in gone],
            state=[r for r in self.state if r[0] not in gone],
            device_ids=[d for d in self.device_ids if d not in gone],
            received_us=self.received_us,
        )


@dataclass(frozen=True, slots=True)
class Written:
    """What a writer committed: keys of new readings (None: all were new), devices gone,
    and how many readings were late (merged into rollups already built)."""

    inserted: list[Key] | None
    gone: set[str]
    late: int = 0
    path: str = ""  # how it was committed, for the telehub_ingest_commits metric


def newest_per_key(rows: Iterable[Row]) -> list[Row]:
    """One row per (device, key): the newest. An upsert may touch each key once."""
    best: dict[tuple[str, str], Row] = {}
    for row in rows:
        key = (row[0], row[1])
        old = best.get(key)
        if old is None or row[2] > old[2]:
            best[key] = row
    return list(best.values())


def build(items: Sequence[Telemetry], *, received_us: int) -> Batch:
    """Flatten the items into rows; keep the newest reading of each series for ``latest``."""
    rows: list[Row] = list(chain.from_iterable(item.readings for item in items))
    candidates = chain.from_iterable(
        item.readings if item.newest is None else item.newest for item in items
    )
    # Upserts touch rows in key order, so concurrent writers (several API
    # processes) lock them in the same order and cannot deadlock.
    return Batch(
        rows=rows,
        latest=sorted(newest_per_key(candidates)),
        state=sorted(
            newest_per_key(
                (s.device_id, s.key, s.ts_us, orjson.dumps(s.value).decode())
                for item in items
                for s in item.state
            )
        ),
        device_ids=sorted({item.device_id for item in items}),
        received_us=received_us,
    )


def owners(items: Sequence[Telemetry]) -> dict[Key, int]:
    """Which item each reading key came from (the first, if several carry it)."""
    owner: dict[Key, int] = {}
    for index, item in enumerate(items):
        for r in item.readings:
            owner.setdefault((r[0], r[1], r[2]), index)
    return owner


def latest_wins(table: str, key: str) -> str:
    """The ON CONFLICT clause of the latest-value tables, the same on both databases.

    Latest wins by timestamp, not arrival: a late, older message never overwrites.
    An upsert statement may touch each key once, hence ``newest_per_key``.
    """
    return (
        f"ON CONFLICT (device_id, {key}) DO UPDATE SET ts = excluded.ts, "
        f"value = excluded.value WHERE excluded.ts > {table}.ts"
    )
