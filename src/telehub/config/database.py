"""The database group of :class:`~telehub.config.Settings`: where everything is stored.

The deadlines are PostgreSQL's: a database across a network can stop answering,
and a request must not wait for it forever. SQLite is a local file.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class DatabaseSettings(BaseModel):
    """``TELEHUB_DATABASE_*``: the URL, the PostgreSQL schema, its pool and deadlines."""

    database_url: str = Field(
        "sqlite+aiosqlite:///./telehub.db",
        description="sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db",
    )
    database_schema: str | None = Field(
        None, description="PostgreSQL schema to use (search_path); created if missing"
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        le=200,
        description="PostgreSQL: connections the pool keeps for requests (the batch writer "
        "has its own)",
    )
    database_connect_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="PostgreSQL: a connection not made within this, or a pooled one that "
        "does not answer a ping within it, is given up (503); also the deadline of "
        "/readyz's database check, on SQLite too",
    )
    database_statement_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="PostgreSQL: a statement (a query, a device delete) not answered within "
        "this is abandoned with its connection and the request answers 503; migrations have "
        "no deadline",
    )
    database_commit_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="PostgreSQL: an ingest batch whose commit is not answered within this "
        "is abandoned with its connection and its senders answered 503 (it may or may not "
        "have been stored; a resent reading is stored once)",
    )
