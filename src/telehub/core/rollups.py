"""The rollup build pass: what `telehub db rollup` runs, `telehub serve` runs periodically,
and a Celery beat task will call once telehub has Celery.

A pass brings every series' rollups up to ``now - lag`` (floored to each
width), one bounded transaction at a time; readings newer than that are read
raw by queries. A reading that arrives later below what a pass built is
merged by the batch writer in its own transaction, so rollups stay exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from telehub.core.metrics import Metrics
from telehub.core.ports import Store
from telehub.domain.readings import now_us

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RollupStats:
    """One pass: series looked at, buckets written, transactions, wall time."""

    series: int
    buckets: int
    transactions: int
    seconds: float


class RollupService:
    def __init__(
        self, *, store: Store, metrics: Metrics, lag_seconds: float, interval_seconds: float
    ) -> None:
        self._store = store.rollups
        self._metrics = metrics
        self._lag_us = int(lag_seconds * 1_000_000)
        self._interval = interval_seconds
        self._store.on_late(metrics.rollup_late_readings.inc)

    async def run_pass(self, *, now: int | None = None) -> RollupStats:
        """Build every series' rollups up to ``now - lag`` (now in epoch µs; default: the clock)."""
        started = time.perf_counter()
        until_us = (now_us() if now is None else now) - self._lag_us
        await self._store.prepare()
        series = await self._store.series()
        buckets = transactions = 0
        for device_id, metric in series:
            while True:
                step = await self._store.step(device_id, metric, until_us=until_us)
                buckets += step.buckets
                transactions += 1
                if step.finished:
                    break
        seconds = time.perf_counter() - started
        self._metrics.rollup_passes.inc()
        self._metrics.rollup_pass_seconds.observe(seconds)
        self._metrics.rollup_buckets.inc(buckets)
        return RollupStats(len(series), buckets, transactions, seconds)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """A pass now and then every ``interval_seconds`` in the background (0: none)."""
        if self._interval <= 0:
            yield
            return
        task = asyncio.create_task(self._periodic(), name="rollup-passes")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _periodic(self) -> None:
        while True:
            try:
                stats = await self.run_pass()
            except Exception:
                # The next pass resumes where this one stopped: every step committed stays.
                log.exception("rollup pass failed")
            else:
                log.debug("rollup pass: %s", stats)
            await asyncio.sleep(self._interval)
