"""Believable sensor signals: a daily cycle, noise, slow drift, spikes and dropouts.

Each :class:`Signal` draws from its own ``random.Random``, so a run under one
seed produces the same readings for the same sample times, whatever else runs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum

DAY_S = 86_400.0


class MetricKind(StrEnum):
    TEMPERATURE = "temperature"
    HUMIDITY = "humidity"
    POWER = "power"
    VIBRATION = "vibration"


@dataclass(frozen=True, slots=True)
class Profile:
    """How one kind of metric behaves; values are clamped to ``[low, high]``."""

    base: float
    amplitude: float  # of the daily cycle
    peak_hour: float  # hour of day (UTC) when the cycle peaks
    noise: float  # standard deviation of the per-reading noise
    drift: float  # standard deviation of the drift's step, per hour
    spike: float  # size of a spike
    low: float
    high: float

    def __post_init__(self) -> None:
        if self.low >= self.high:
            raise ValueError("low must be below high")
        if min(self.amplitude, self.noise, self.drift, self.spike) < 0:
            raise ValueError("amplitude, noise, drift and spike cannot be negative")


PROFILES: dict[MetricKind, Profile] = {
    MetricKind.TEMPERATURE: Profile(21.0, 4.0, 15.0, 0.15, 0.3, 12.0, -40.0, 85.0),
    MetricKind.HUMIDITY: Profile(50.0, 12.0, 5.0, 0.8, 1.0, 30.0, 0.0, 100.0),
    MetricKind.POWER: Profile(800.0, 450.0, 19.0, 25.0, 10.0, 2500.0, 0.0, 5000.0),
    MetricKind.VIBRATION: Profile(0.6, 0.3, 12.0, 0.05, 0.02, 4.0, 0.0, 20.0),
}


@dataclass(frozen=True, slots=True)
class Shares:
    """The share of samples that spike and that drop out (are skipped)."""

    spike: float = 0.01
    dropout: float = 0.02

    def __post_init__(self) -> None:
        for name, share in (("spike", self.spike), ("dropout", self.dropout)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} share must be within [0, 1], not {share}")


class Signal:
    """One metric of one device; ``sample(t)`` is its reading at ``t`` (seconds since
    the epoch), or None when the sensor drops out. Samples are taken in time order."""

    def __init__(self, kind: MetricKind, *, seed: int, shares: Shares | None = None) -> None:
        self.kind = kind
        self.profile = PROFILES[kind]
        self.shares = shares or Shares()
        self._rng = random.Random(seed)
        # Devices differ: each gets its own offset and phase jitter.
        self._offset = self._rng.gauss(0.0, self.profile.amplitude * 0.1)
        self._phase_jitter_h = self._rng.uniform(-1.0, 1.0)
        self._drift = 0.0
        self._last_t: float | None = None

    def cycle(self, t: float) -> float:
        """The noise-free daily cycle at ``t``: base + amplitude at the peak hour."""
        p = self.profile
        hour = (t % DAY_S) / 3600.0
        angle = 2.0 * math.pi * (hour - p.peak_hour - self._phase_jitter_h) / 24.0
        return p.base + self._offset + p.amplitude * math.cos(angle)

    def sample(self, t: float) -> float | None:
        p = self.profile
        # Every draw happens whatever the outcome, so the sequence of random
        # numbers (and so the run) does not depend on earlier dropouts.
        dropout = self._rng.random() < self.shares.dropout
        spike = self._rng.random() < self.shares.spike
        noise = self._rng.gauss(0.0, p.noise)
        step = self._rng.gauss(0.0, 1.0)
        sign = 1.0 if self._rng.random() < 0.5 else -1.0
        elapsed_h = 0.0 if self._last_t is None else max(0.0, t - self._last_t) / 3600.0
        self._last_t = t
        # A random walk pulled back towards zero, so drift stays slow and bounded.
        self._drift += p.drift * math.sqrt(elapsed_h) * step - self._drift * min(
            1.0, elapsed_h / 24
        )
        if dropout:
            return None
        value = self.cycle(t) + self._drift + noise + (sign * p.spike if spike else 0.0)
        return min(p.high, max(p.low, value))


class DeviceSignals:
    """The signals of one simulated device, one per metric kind."""

    def __init__(
        self,
        *,
        seed: int,
        kinds: tuple[MetricKind, ...] = tuple(MetricKind),
        shares: Shares | None = None,
    ) -> None:
        # A seed per metric derived from the device's: stable across runs.
        self.signals = [
            Signal(kind, seed=seed * 1_000 + i, shares=shares) for i, kind in enumerate(kinds)
        ]

    def sample(self, t: float) -> dict[str, float]:
        """One message's values at ``t``: the metrics that did not drop out (maybe none)."""
        values: dict[str, float] = {}
        for signal in self.signals:
            value = signal.sample(t)
            if value is not None:
                values[signal.kind.value] = round(value, 4)
        return values
