"""The ingest group of :class:`~telehub.config.Settings`: how readings become commits.

Each default is a measurement's result (see ``core/batching.py``, which reads
them into a ``BatchingPolicy``): change one with a benchmark at hand.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class IngestSettings(BaseModel):
    """``TELEHUB_INGEST_*``: the queue, the batching and the writers' choice of path."""

    ingest_queue_readings: int = Field(
        200_000,
        ge=10_000,
        description="readings accepted but not yet committed, at most; beyond it ingest "
        "answers 503 with Retry-After (gRPC: RESOURCE_EXHAUSTED)",
    )
    ingest_batch_readings: int = Field(
        20_000, ge=1, description="a commit holds at most this many readings"
    )
    ingest_batch_max_wait: float = Field(
        0.005,
        ge=0,
        le=0.5,
        description=(
            "with ingest_batch_quiet > 0: seconds the oldest queued reading waits, at most, "
            "for others to share its commit"
        ),
    )
    ingest_batch_quiet: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description=(
            "seconds a commit waits for company while submissions keep coming (at most "
            "ingest_batch_max_wait); 0: commit as soon as the writer is free"
        ),
    )
    ingest_gather_turns: int = Field(
        4,
        ge=0,
        le=64,
        description="event-loop turns the writer lets pass before it cuts a batch, so requests "
        "already read join this commit instead of waiting out the next (measured: +10-15 % "
        "single-reading POSTs at 16-64 clients; each turn costs microseconds when idle)",
    )
    ingest_inline_values: int = Field(
        32,
        ge=0,
        description="SQLite: a batch of at most this many values commits on the event loop's "
        "thread, skipping two thread hand-offs (about 0.8 ms on a busy 2-core host, several "
        "times the commit); larger ones, or any while another connection holds the write "
        "lock, go to the writer thread. 0: always the thread",
    )
    ingest_inline_budget_ms: float = Field(
        2.0,
        gt=0,
        description="SQLite: when inline commits average longer than this (a slow disk's "
        "fsync), the next ingest_inline_pause_batches batches go to the writer thread, so "
        "a slow disk never stalls the event loop",
    )
    ingest_inline_pause_batches: int = Field(
        1000,
        ge=1,
        description="SQLite: how many batches go to the writer thread once inline commits "
        "are over ingest_inline_budget_ms",
    )
    ingest_one_statement_rows: int = Field(
        1000,
        ge=0,
        description="PostgreSQL: a batch of fewer readings (no state, none old enough to "
        "touch rollups) is one statement from the event loop; larger ones go by COPY on "
        "the writer thread. 0: always COPY",
    )
    ingest_retry_after: float = Field(
        1.0, gt=0, description="seconds in the Retry-After of a full ingest queue's 503"
    )
