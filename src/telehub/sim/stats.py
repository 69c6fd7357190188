"""Honest counts of a simulation run, and the summary it ends with.

*Sent* is a message handed to the transport; *acknowledged* is one its
transport confirmed: the hub after its commit on HTTP (202) and gRPC (a
PublishSummary), the broker on MQTT (a PUBACK: the embedded broker sends it
after the commit, an external broker on receipt, and a broker that is not the
hub's at all sends it just the same). So acknowledged is not yet stored:
*stored* is what the hub holds for the run, read back from it once the run is
over (verify.py), and the run is whole only when every message sent was
acknowledged and every acknowledged reading is stored. Latency is from
hand-over to the acknowledgement. Latencies are kept in a bounded reservoir.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RESERVOIR = 50_000


def percentile(ordered: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0 to 100, nearest rank) of sorted values; None when empty."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), math.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Stats:
    """Counters updated by the runner; ``summary()`` is what gets reported."""

    transport: str
    devices: int
    target_rate: float
    endpoint: str = ""  # where the messages went: the API, the gRPC target, the broker
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    # The wall-clock span of the run: every message sent is stamped within it.
    began_at: datetime | None = None
    ended_at: datetime | None = None
    sent: int = 0
    acknowledged: int = 0
    readings_sent: int = 0
    readings_acknowledged: int = 0
    duplicates: int = 0
    skipped: int = 0  # messages with every metric dropped out: nothing to send
    in_flight: int = 0
    missed: int = 0  # slots not sent before the run ended (the window was full)
    errors: Counter[str] = field(default_factory=Counter)
    commands_ok: int = 0
    commands_error: int = 0
    # Acknowledged readings per device: what the hub must hold once the run is over.
    acknowledged_by_device: Counter[str] = field(default_factory=Counter)
    readings_stored: int | None = None  # read back from the hub after the run
    missing: dict[str, int] = field(default_factory=dict)  # device → readings not stored
    _latencies: list[float] = field(default_factory=list)
    _seen: int = 0
    _rng: random.Random = field(default_factory=lambda: random.Random(0))

    def record_ack(
        self, device_id: str, *, readings: int, duplicates: int, latency_s: float
    ) -> None:
        self.acknowledged += 1
        self.readings_acknowledged += readings
        self.acknowledged_by_device[device_id] += readings
        self.duplicates += duplicates
        self._seen += 1
        if len(self._latencies) < RESERVOIR:
            self._latencies.append(latency_s)
        else:  # reservoir sampling: each latency kept with equal chance
            slot = self._rng.randrange(self._seen)
            if slot < RESERVOIR:
                self._latencies[slot] = latency_s

    def record_error(self, kind: str) -> None:
        self.errors[kind] += 1

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self._latencies)

        def ms(q: float) -> float | None:
            value = percentile(ordered, q)
            return None if value is None else round(value * 1000.0, 3)

        elapsed = self.elapsed
        return {
            "transport": self.transport,
            "endpoint": self.endpoint,
            "devices": self.devices,
            "target_rate": self.target_rate,
            "elapsed_s": round(elapsed, 3),
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "readings_sent": self.readings_sent,
            "readings_acknowledged": self.readings_acknowledged,
            "readings_stored": self.readings_stored,
            "missing": dict(sorted(self.missing.items())),
            "duplicates": self.duplicates,
            "skipped_dropouts": self.skipped,
            "missed_slots": self.missed,
            "errors": dict(sorted(self.errors.items())),
            "error_total": sum(self.errors.values()),
            "in_flight": self.in_flight,
            "achieved_rate": round(self.acknowledged / elapsed, 3) if elapsed > 0 else 0.0,
            "latency_ms": {"p50": ms(50), "p95": ms(95), "p99": ms(99)},
            "commands": {"ok": self.commands_ok, "error": self.commands_error},
        }
