"""What ``telehub db upgrade`` and ``telehub db rollup`` run."""

from __future__ import annotations

from telehub.cli.common import out, run, settings
from telehub.core.rollups import RollupStats
from telehub.hub import open_hub
from telehub.storage.store import SqlStore


async def _upgrade() -> None:
    store = SqlStore(settings())
    try:
        await store.upgrade()
    finally:
        await store.close()


def upgrade() -> None:
    run(_upgrade())
    out("database is up to date")


async def _rollup() -> RollupStats:
    async with open_hub(settings()) as hub:
        return await hub.rollups.run_pass()


def rollup() -> None:
    stats = run(_rollup())
    out(
        f"rollups: {stats.series} series, {stats.buckets} buckets written "
        f"in {stats.transactions} transactions, {stats.seconds:.2f} s"
    )
