"""Indexes for filtered SSE resumes: events by type and by device, in id order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_type_id", "events", ["type", "id"])
    op.create_index("ix_events_device_id_id", "events", ["device_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_device_id_id", table_name="events")
    op.drop_index("ix_events_type_id", table_name="events")
