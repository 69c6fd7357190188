"""Late readings: merged into the rollups already built, in the writer's own transaction.

A reading is late when a build pass has rolled up its bucket already (its ts
is below the series' ``done_until_us`` for that width). The build pass never
goes past ``now - lag``, so only a reading older than ``received_us - lag/2``
can be late: a real-time batch pays one min() over its timestamps, nothing
more. A batch holding older readings reads the progress rows of their series
(PostgreSQL: ``FOR SHARE``, see storage/rollups.py for why that is enough)
and adds the readings that were really new, not the duplicates, to the
rollups of every width built past them.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from telehub.domain.rollups import ROLLUP_WIDTHS_US
from telehub.storage.rows import Batch, Row

# (device_id, metric, width_us, start_us, count, sum, min, max)
Partial = tuple[str, str, int, int, int, float, float, float]
Done = dict[tuple[str, str, int], int]

_ts = itemgetter(2)

INSERT_PARTIALS = (
    "INSERT INTO rollups (device_id, metric, width_us, start_us, count, sum, min, max) "
)
# The additive merge: count and sum add up, min and max are the smaller and larger.
ON_CONFLICT_ADD = (
    " ON CONFLICT (device_id, metric, width_us, start_us) DO UPDATE SET "
    "count = rollups.count + excluded.count, sum = rollups.sum + excluded.sum, "
    "min = {least}(rollups.min, excluded.min), max = {greatest}(rollups.max, excluded.max)"
)
SQLITE_ADD = ON_CONFLICT_ADD.format(least="min", greatest="max")
PG_ADD = ON_CONFLICT_ADD.format(least="LEAST", greatest="GREATEST")


def candidates(batch: Batch, inserted: Sequence[Row] | None, margin_us: int) -> list[Row]:
    """The new readings (``inserted``, or all the batch's) old enough to be late."""
    rows = batch.rows if inserted is None else inserted
    if not rows:
        return []
    threshold = batch.received_us - margin_us
    if min(map(_ts, rows)) >= threshold:
        return []
    return [r for r in rows if r[2] < threshold]


def series_of(rows: Sequence[Row]) -> list[tuple[str, str]]:
    """The (device, metric) pairs of ``rows``, in key order (the order locks are taken in)."""
    return sorted({(r[0], r[1]) for r in rows})


def partials(rows: Sequence[Row], done: Done) -> tuple[list[Partial], int]:
    """Per series, width and bucket below that width's ``done_until_us``: the rows' aggregate.

    Returns the partials in key order (upserts lock rows in the same order in
    every writer, so they cannot deadlock) and how many readings were late.
    """
    acc: dict[tuple[str, str, int, int], list[float]] = {}
    late = 0
    for device_id, metric, ts, value in rows:
        merged = False
        for width in ROLLUP_WIDTHS_US:
            if ts >= done.get((device_id, metric, width), 0):
                continue
            merged = True
            key = (device_id, metric, width, ts // width * width)
            a = acc.get(key)
            if a is None:
                acc[key] = [1, value, value, value]
            else:
                a[0] += 1
                a[1] += value
                a[2] = min(a[2], value)
                a[3] = max(a[3], value)
        late += merged
    out: list[Partial] = [
        (d, m, w, s, int(a[0]), float(a[1]), float(a[2]), float(a[3]))
        for (d, m, w, s), a in sorted(acc.items())
    ]
    return out, late
