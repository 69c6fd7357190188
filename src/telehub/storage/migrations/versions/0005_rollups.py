"""Rollups: per-series bucket aggregates and how far each series is built.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollups",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("width_us", sa.BigInteger(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("sum", sa.Double(), nullable=False),
        sa.Column("min", sa.Double(), nullable=False),
        sa.Column("max", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "metric", "width_us", "start_us", name="pk_rollups"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "rollup_progress",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("width_us", sa.BigInteger(), nullable=False),
        sa.Column("done_until_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "metric", "width_us", name="pk_rollup_progress"),
    )


def downgrade() -> None:
    op.drop_table("rollup_progress")
    op.drop_table("rollups")
