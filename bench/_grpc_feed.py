"""What the gRPC benchmark sends: batches of 100 or 1,000 readings, every reading new.

A batch of ``size`` readings is ``size // 10`` consecutive milliseconds x 10 metrics.
Each size has its own time region and one sequence counter that every transport and
client draws from, so no reading is ever sent twice. Messages and bodies are built
before a measurement starts (the client is not what is measured): a protobuf batch
is a copy of one template whose timestamps are then set, ~4x faster than building
each Reading.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson

from _load import Row
from telehub.v1 import telemetry_pb2

# Timestamps start a week ago, well inside the accepted range; each size's region is
# three days long, so the last one still ends in the past.
BASE_MS = (int(time.time()) - 7 * 86_400) * 1000
REGION_MS = 3 * 86_400 * 1000
METRICS = tuple(f"m{k}" for k in range(10))
VALUES = tuple(20.0 + k / 10 for k in range(len(METRICS)))
SIZES = (100, 1000)


@dataclass
class Feed:
    """The batches of one size: batch ``seq`` holds readings no other batch holds."""

    size: int
    next_seq: int = 0
    _template: telemetry_pb2.ReadingBatch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.size % len(METRICS):
            raise ValueError(f"a batch size must be a multiple of {len(METRICS)}")
        self._template = telemetry_pb2.ReadingBatch(
            readings=[
                telemetry_pb2.Reading(metric=m, value=v)
                for _ in range(self.steps)
                for m, v in zip(METRICS, VALUES, strict=True)
            ]
        )

    @property
    def wire_bytes(self) -> int:
        """The size of one protobuf batch on the wire."""
        return self.message("bench-000", 0).ByteSize()

    @property
    def steps(self) -> int:
        return self.size // len(METRICS)

    @property
    def _origin_ms(self) -> int:
        return BASE_MS + SIZES.index(self.size) * REGION_MS

    def take(self, batches: int) -> range:
        """The next ``batches`` seqs, never handed out again."""
        first = self.next_seq
        self.next_seq += batches
        return range(first, first + batches)

    def message(self, device_id: str, seq: int) -> telemetry_pb2.ReadingBatch:
        batch = telemetry_pb2.ReadingBatch()
        batch.CopyFrom(self._template)
        batch.device_id = device_id
        readings = batch.readings
        ms = self._origin_ms + seq * self.steps
        i = 0
        for _ in range(self.steps):
            seconds, nanos = divmod(ms, 1000)
            for _ in METRICS:
                ts = readings[i].ts
                ts.seconds = seconds
                ts.nanos = nanos * 1_000_000
                i += 1
            ms += 1
        return batch

    def series_message(self, device_id: str, seq: int) -> telemetry_pb2.ReadingBatch:
        """The same readings as ``message``, in the compact form: one Series per metric."""
        ms = self._origin_ms + seq * self.steps
        stamps = [(ms + j) * 1000 for j in range(self.steps)]
        return telemetry_pb2.ReadingBatch(
            device_id=device_id,
            series=[
                telemetry_pb2.Series(metric=m, values=[v] * self.steps, timestamps_us=stamps)
                for m, v in zip(METRICS, VALUES, strict=True)
            ],
        )

    def body(self, seq: int) -> bytes:
        """The same readings as ``message`` as a REST body (the device is in the URL)."""
        values = dict(zip(METRICS, VALUES, strict=True))
        ms = self._origin_ms + seq * self.steps
        return orjson.dumps([{"ts": ms + j, "values": values} for j in range(self.steps)])

    def rows(self, device_id: str, seqs: range) -> list[Row]:
        """The rows the store keeps for those batches (ts in microseconds), in send order."""
        out: list[Row] = []
        for seq in seqs:
            ms = self._origin_ms + seq * self.steps
            for j in range(self.steps):
                out.extend(
                    (device_id, m, (ms + j) * 1000, v) for m, v in zip(METRICS, VALUES, strict=True)
                )
        return out
