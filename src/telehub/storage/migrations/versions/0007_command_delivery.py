"""Commands record when the device's MQTT client took one (status delivered).

The new statuses (queued, delivered) fit the existing String(16) column.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("commands") as batch:
        batch.add_column(sa.Column("delivered_us", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    # Older code knows neither status: what was queued waits as pending, what was
    # delivered counts as sent.
    op.execute("UPDATE commands SET status = 'pending' WHERE status = 'queued'")
    op.execute("UPDATE commands SET status = 'sent' WHERE status = 'delivered'")
    with op.batch_alter_table("commands") as batch:
        batch.drop_column("delivered_us")
