"""The one way the CLI shows a moment: ISO 8601 in UTC, to the microsecond, with ``Z``
(``2026-12-07T09:30:00.000000Z``): the same width in every table, and exact (readings
are stored to the microsecond, so two of them never look alike when they are not)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_time(moment: datetime) -> str:
    """``moment`` in UTC (a naive one is taken as UTC), e.g. ``2026-12-07T09:30:00.000000Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def iso_text(text: str) -> str:
    """A time the server sent as text, shown as :func:`iso_time` does; left as it is when
    it is not ISO 8601."""
    try:
        return iso_time(datetime.fromisoformat(text))
    except ValueError:
        return text
