"""``telehub db``: schema migrations, and the rollup build pass (run by server/database.py)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Database schema and rollups.", no_args_is_help=True)


@app.command()
def upgrade() -> None:
    """Apply every pending migration (SQLite or PostgreSQL, by TELEHUB_DATABASE_URL)."""
    from telehub.cli.server import database

    database.upgrade()


@app.command()
def rollup() -> None:
    """Build rollups now, up to TELEHUB_ROLLUP_LAG_SECONDS ago (`telehub serve` does it
    every TELEHUB_ROLLUP_INTERVAL_SECONDS)."""
    from telehub.cli.server import database

    database.rollup()
