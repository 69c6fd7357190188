"""Device presence (MQTT status topic) and device commands.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("online", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("presence_us", sa.BigInteger(), nullable=True))
    op.create_table(
        "commands",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("batch_id", sa.String(32), nullable=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("sent_us", sa.BigInteger(), nullable=True),
        sa.Column("done_us", sa.BigInteger(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_commands"),
    )
    op.create_index("ix_commands_device_id_created_us", "commands", ["device_id", "created_us"])
    op.create_index("ix_commands_status_expires_us", "commands", ["status", "expires_us"])
    op.create_index("ix_commands_batch_id", "commands", ["batch_id"])


def downgrade() -> None:
    for index in (
        "ix_commands_batch_id",
        "ix_commands_status_expires_us",
        "ix_commands_device_id_created_us",
    ):
        op.drop_index(index, table_name="commands")
    op.drop_table("commands")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("presence_us")
        batch.drop_column("online")
