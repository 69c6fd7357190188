"""Rollups: per-series partial aggregates of fixed-width, epoch-aligned time buckets.

A rollup row of width ``w`` starting at ``s`` holds count, sum, min and max of
the series' readings with ``s <= ts < s + w``. A series' rollups of one width
are exact up to its ``done_until_us``: the build pass advances it, and a
reading committed later below it is merged by the writer in the same
transaction. A bucket query then reads rollups for the whole rollup buckets
below ``done_until_us`` and raw readings for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

SECOND_US = 1_000_000
# Finest first. 10 s divides every usual dashboard interval (10 s, 1 m, 2000 s,
# 1 h, 1 d); 1 h is built from the 10 s rows and serves hour- and day-sized buckets.
ROLLUP_WIDTHS_US: tuple[int, ...] = (10 * SECOND_US, 3600 * SECOND_US)


@dataclass(frozen=True, slots=True)
class Segment:
    """``lo <= ts < hi``, read from rollups of ``width_us`` or, when it is None, raw."""

    lo_us: int
    hi_us: int
    width_us: int | None


def usable_widths(interval_us: int) -> tuple[int, ...]:
    """Rollup widths whose buckets each fall inside one bucket of ``interval_us``."""
    return tuple(w for w in ROLLUP_WIDTHS_US if interval_us % w == 0)


def plan_segments(start_us: int, end_us: int, done: dict[int, int]) -> list[Segment]:
    """Cover ``[start_us, end_us)`` with the coarsest rollups that are done, then finer, then raw.

    ``done`` maps each usable width to its ``done_until_us``. Each width covers
    its whole buckets inside the range and below its ``done_until_us``; what is
    left on either side goes to the next finer width, and finally to raw readings.
    """
    levels = sorted(done.items(), reverse=True)
    out: list[Segment] = []
    _cover(start_us, end_us, levels, out)
    return out


def _cover(lo: int, hi: int, levels: list[tuple[int, int]], out: list[Segment]) -> None:
    if lo >= hi:
        return
    if not levels:
        out.append(Segment(lo, hi, None))
        return
    (width, done_until), finer = levels[0], levels[1:]
    first = -(-lo // width) * width
    last = min(hi // width * width, done_until)
    if first >= last:
        _cover(lo, hi, finer, out)
        return
    _cover(lo, first, finer, out)
    out.append(Segment(first, last, width))
    _cover(last, hi, finer, out)
