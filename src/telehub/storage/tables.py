"""Table definitions shared by the repositories and the Alembic migrations.

Timestamps are BIGINT microseconds since the epoch (UTC) everywhere: the same
on SQLite and PostgreSQL, and bucketing is an integer division.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from telehub.domain.rules import DEVICE_ID_MAX_CHARS

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite needs INTEGER (not BIGINT) for an auto-incrementing rowid key.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

devices = Table(
    "devices",
    metadata,
    Column("id", String(DEVICE_ID_MAX_CHARS), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_us", BigInteger, nullable=False),
    Column("last_seen_us", BigInteger, nullable=True),
    # Presence from the device's MQTT status topic: NULL until it first reports.
    Column("online", Boolean, nullable=True),
    Column("presence_us", BigInteger, nullable=True),
)

# The primary key is the dedupe key and the clustered range-scan index.
readings = Table(
    "readings",
    metadata,
    Column("device_id", String(DEVICE_ID_MAX_CHARS), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("ts", BigInteger, primary_key=True),
    Column("value", Double, nullable=False),
    sqlite_with_rowid=False,
)

# Per-series aggregates of fixed-width buckets (telehub.domain.rollups): a row covers
# start_us <= ts < start_us + width_us; a bucket without readings has no row.
rollups = Table(
    "rollups",
    metadata,
    Column("device_id", String(DEVICE_ID_MAX_CHARS), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("width_us", BigInteger, primary_key=True),
    Column("start_us", BigInteger, primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("sum", Double, nullable=False),
    Column("min", Double, nullable=False),
    Column("max", Double, nullable=False),
    sqlite_with_rowid=False,
)

# Every bucket of a series and width ending at or before done_until_us is rolled
# up, and the writer keeps it exact; 0 until the first build pass.
rollup_progress = Table(
    "rollup_progress",
    metadata,
    Column("device_id", String(DEVICE_ID_MAX_CHARS), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("width_us", BigInteger, primary_key=True),
    Column("done_until_us", BigInteger, nullable=False),
)

device_latest = Table(
    "device_latest",
    metadata,
    Column("device_id", String(DEVICE_ID_MAX_CHARS), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("ts", BigInteger, nullable=False),
    Column("value", Double, nullable=False),
)

device_state = Table(
    "device_state",
    metadata,
    Column("device_id", String(DEVICE_ID_MAX_CHARS), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("ts", BigInteger, nullable=False),
    Column("value", JSON, nullable=True),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_us", BigInteger, nullable=False),
)

# Live tickets (telehub.core.tickets): hashed, spent by deleting the row, expired
# rows swept when new ones are issued.
live_tickets = Table(
    "live_tickets",
    metadata,
    Column("ticket_hash", String(64), primary_key=True),
    Column("token_id", String(32), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Index(None, "expires_us"),
)

rejected_messages = Table(
    "rejected_messages",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("received_us", BigInteger, nullable=False),
    Column("transport", String(16), nullable=False),
    Column("device_id", String(DEVICE_ID_MAX_CHARS), nullable=True),
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("excerpt", Text, nullable=False),
    Index(None, "device_id", "id"),
)

# Device commands: the table is the queue (pending | queued → sent → delivered → acked |
# failed, or expired; domain/commands.py), so any process may create one and the one
# running the MQTT bridge sends it. delivered_us came later (0007), hence its place.
commands = Table(
    "commands",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("device_id", String(DEVICE_ID_MAX_CHARS), nullable=False),
    Column("batch_id", String(32), nullable=True),
    Column("name", String(64), nullable=False),
    Column("params", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("sent_us", BigInteger, nullable=True),
    Column("done_us", BigInteger, nullable=True),
    Column("result", JSON, nullable=True),
    Column("delivered_us", BigInteger, nullable=True),
    Index(None, "device_id", "created_us"),
    Index(None, "status", "expires_us"),
    Index(None, "batch_id"),
)

# The durable event log behind SSE resume: ids only grow (AUTOINCREMENT on SQLite,
# a sequence on PostgreSQL), and the oldest rows are trimmed beyond a bound.
events = Table(
    "events",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("type", String(16), nullable=False),
    Column("device_id", String(DEVICE_ID_MAX_CHARS), nullable=True),
    Column("at_us", BigInteger, nullable=False),
    Column("data", JSON, nullable=False),
    # A filtered resume (?types=, ?devices=) walks these instead of every newer event.
    Index(None, "type", "id"),
    Index(None, "device_id", "id"),
    sqlite_autoincrement=True,
)
