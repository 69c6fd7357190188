"""``telehub db``: schema migrations."""

from __future__ import annotations

import typer

from telehub.cli.common import out, run, settings
from telehub.storage.store import SqlStore

app = typer.Typer(help="Database schema.", no_args_is_help=True)


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
