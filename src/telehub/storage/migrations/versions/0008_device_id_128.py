"""Device ids of up to 128 characters: the identifiers devices really carry.

Every column that holds a device id grows from VARCHAR(64) to VARCHAR(128).
On PostgreSQL that is a change of the catalogue only (a longer varchar needs
no rewrite). SQLite enforces no length, but it keeps the declared type, so
each table is rebuilt (Alembic's batch mode) to declare the new one, keeping
what reflection would lose: WITHOUT ROWID, AUTOINCREMENT and the event log's
sequence, so event ids keep only growing.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# table, column, nullable, what SQLite's rebuild must keep
_COLUMNS: list[tuple[str, str, bool, dict[str, Any]]] = [
    ("devices", "id", False, {}),
    ("readings", "device_id", False, {"sqlite_with_rowid": False}),
    ("rollups", "device_id", False, {"sqlite_with_rowid": False}),
    ("rollup_progress", "device_id", False, {}),
    ("device_latest", "device_id", False, {}),
    ("device_state", "device_id", False, {}),
    ("rejected_messages", "device_id", True, {}),
    ("commands", "device_id", False, {}),
    ("events", "device_id", True, {"sqlite_autoincrement": True}),
]


def _resize(old: int, new: int) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    events_seq = _events_sequence() if sqlite else None
    for table, column, nullable, keep in _COLUMNS:
        with op.batch_alter_table(table, table_kwargs=keep if sqlite else {}) as batch:
            batch.alter_column(
                column,
                type_=sa.String(new),
                existing_type=sa.String(old),
                existing_nullable=nullable,
            )
    if events_seq is not None:
        # The rebuilt table's sequence starts at its largest id; the old one may be past it.
        op.execute(
            sa.text(
                "UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = 'events'"
            ).bindparams(seq=events_seq)
        )


def _events_sequence() -> int | None:
    row = (
        op.get_bind()
        .execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'events'"))
        .first()
    )
    return None if row is None else int(row[0])


def upgrade() -> None:
    _resize(64, 128)


def downgrade() -> None:
    # Refused by PostgreSQL if a stored id is longer than 64 characters.
    _resize(128, 64)
