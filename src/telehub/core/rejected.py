"""The dead-letter record: every refused input is counted and kept (bounded) with why."""

from __future__ import annotations

import logging

from telehub.core.metrics import Metrics
from telehub.core.ports import Store
from telehub.domain.devices import RejectedInput
from telehub.domain.readings import now_us
from telehub.domain.rules import is_device_id
from telehub.domain.telemetry import excerpt
from telehub.errors import InvalidInput

log = logging.getLogger(__name__)
EXCERPT_BYTES = 512


class RejectedLog:
    def __init__(self, *, store: Store, metrics: Metrics, keep: int) -> None:
        self._store = store
        self._metrics = metrics
        self._keep = keep

    async def record(
        self, *, transport: str, device_id: str | None, error: InvalidInput, payload: bytes
    ) -> None:
        self._metrics.rejected.labels(transport=transport, reason=error.reason).inc()
        # Only excerpts of what the error quotes of the input (a key, a topic).
        detail = excerpt(error.detail)
        if error.errors:
            detail += ": " + "; ".join(
                f"{excerpt(e.pointer or e.parameter or '')}: {excerpt(e.detail)}"
                for e in error.errors[:10]
            )
        try:
            await self._store.rejected.add(
                received_us=now_us(),
                transport=transport,
                # A malformed id names no device (and may not fit where ids are kept);
                # the excerpt still shows it.
                device_id=device_id if device_id is None or is_device_id(device_id) else None,
                reason=error.reason,
                detail=_text(detail[:2000]),
                excerpt=_text(payload[:EXCERPT_BYTES].decode("utf-8", errors="replace")),
                keep=self._keep,
            )
        except Exception:
            # The sender still gets its error; only the inspection copy is lost.
            log.exception("could not record a rejected input")

    async def recent(
        self, *, limit: int, before_id: int | None, device_id: str | None
    ) -> list[RejectedInput]:
        return await self._store.rejected.recent(
            limit=limit, before_id=before_id, device_id=device_id
        )


def _text(value: str) -> str:
    """Text any database keeps: PostgreSQL refuses NUL in text, and bad input may hold it."""
    return value.replace("\x00", "\ufffd")
