"""Live tickets: single-use, short-lived credentials for the WebSocket and SSE feeds.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "live_tickets",
        sa.Column("ticket_hash", sa.String(64), nullable=False),
        sa.Column("token_id", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ticket_hash", name="pk_live_tickets"),
    )
    op.create_index("ix_live_tickets_expires_us", "live_tickets", ["expires_us"])


def downgrade() -> None:
    op.drop_index("ix_live_tickets_expires_us", table_name="live_tickets")
    op.drop_table("live_tickets")
