"""``telehub db``: schema migrations, and the rollup build pass."""

from __future__ import annotations

import typer

from telehub.cli.common import out, run, settings
from telehub.core.rollups import RollupStats
from telehub.hub import open_hub
from telehub.storage.store import SqlStore

app = typer.Typer(help="Database schema and rollups.", no_args_is_help=True)


async def _upgrade() -> None:
    store = SqlStore(settings())
    try:
        await store.upgrade()
    finally:
        await store.close()


@app.command()
def upgrade() -> None:
    """Apply every pending migration (SQLite or PostgreSQL, by TELEHUB_DATABASE_URL)."""
    run(_upgrade())
    out("database is up to date")


async def _rollup() -> RollupStats:
    async with open_hub(settings()) as hub:
        return await hub.rollups.run_pass()


@app.command()
def rollup() -> None:
    """Build rollups now, up to TELEHUB_ROLLUP_LAG_SECONDS ago (`telehub serve` does it
    every TELEHUB_ROLLUP_INTERVAL_SECONDS)."""
    stats = run(_rollup())
    out(
        f"rollups: {stats.series} series, {stats.buckets} buckets written "
        f"in {stats.transactions} transactions, {stats.seconds:.2f} s"
    )
