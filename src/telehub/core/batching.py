"""How ingest groups readings into commits: every knob in one place.

A commit costs about the same for one reading as for hundreds (the fsync, the
round trips), so the ingest path trades a little latency for company: the
Ingestor lingers and gathers, the storage writer picks the cheapest way to
commit what it is given. The settings are the ``ingest_*`` group
(telehub/config/ingest.py, documented with the measurements behind each default);
the Ingestor reads the batching ones, the storage writers receive the
thresholds that choose their path, and neither asks which transport a
reading came by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from telehub.config import Settings


@dataclass(frozen=True, slots=True)
class BatchingPolicy:
    queue_readings: int
    """Readings accepted but not committed, at most; beyond it, Overloaded."""
    batch_readings: int
    """Readings in one commit, at most."""
    max_wait: float
    """Seconds the oldest queued reading may wait for company (with ``quiet`` > 0)."""
    quiet: float
    """Seconds without a new submission that end the wait for company."""
    gather_turns: int
    """Event-loop turns before a batch is cut, for requests already read to join it."""
    retry_after: float
    """Seconds a sender refused by a full queue is told to wait."""
    inline_values: int
    """SQLite: batches up to this many values commit on the caller's thread.

    Few: an inline commit stops the loop, so nothing queues up meanwhile, and a
    steady stream of 100-reading submissions committed inline one by one never
    grew its batches (0.63 to 0.43 of the raw driver's rate with 256 here); a
    stalled loop makes the next batch bigger instead, which goes to the thread.
    """
    inline_budget_seconds: float
    """SQLite: an average inline commit over this pauses inline commits."""
    inline_pause_batches: int
    """SQLite: batches sent to the writer thread during such a pause."""
    one_statement_rows: int
    """PostgreSQL: batches of fewer readings are one statement, not COPY."""

    @classmethod
    def of(cls, settings: Settings) -> BatchingPolicy:
        return cls(
            queue_readings=settings.ingest_queue_readings,
            batch_readings=settings.ingest_batch_readings,
            max_wait=settings.ingest_batch_max_wait,
            quiet=settings.ingest_batch_quiet,
            gather_turns=settings.ingest_gather_turns,
            retry_after=settings.ingest_retry_after,
            inline_values=settings.ingest_inline_values,
            inline_budget_seconds=settings.ingest_inline_budget_ms / 1000,
            inline_pause_batches=settings.ingest_inline_pause_batches,
            one_statement_rows=settings.ingest_one_statement_rows,
        )
