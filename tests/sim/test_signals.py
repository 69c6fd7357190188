"""The simulated signals: plausible ranges, a daily cycle, spikes and dropouts at their share."""

from __future__ import annotations

import statistics

import pytest

from telehub.sim.signals import DAY_S, PROFILES, DeviceSignals, MetricKind, Shares, Signal
from telehub.sim.stats import percentile

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: midnight UTC
STEP = 30.0
DAY = [T0 + i * STEP for i in range(int(DAY_S / STEP))]


def samples(kind: MetricKind, *, seed: int = 7, shares: Shares | None = None) -> list[float | None]:
    signal = Signal(kind, seed=seed, shares=shares)
    return [signal.sample(t) for t in DAY]


@pytest.mark.parametrize("kind", list(MetricKind))
def test_values_stay_within_the_metric_range(kind: MetricKind) -> None:
    profile = PROFILES[kind]
    values = [v for v in samples(kind, shares=Shares(spike=0.05)) if v is not None]
    assert values
    assert all(profile.low <= v <= profile.high for v in values)


@pytest.mark.parametrize("kind", list(MetricKind))
def test_the_same_seed_gives_the_same_readings_and_another_seed_others(kind: MetricKind) -> None:
    assert samples(kind, seed=3) == samples(kind, seed=3)
    assert samples(kind, seed=3) != samples(kind, seed=4)


def test_temperature_follows_a_daily_cycle_peaking_in_the_afternoon() -> None:
    values = samples(MetricKind.TEMPERATURE, shares=Shares(spike=0.0, dropout=0.0))
    hourly = [statistics.fmean(v for v in values[h * 120 : (h + 1) * 120] if v) for h in range(24)]
    warmest = max(range(24), key=lambda h: hourly[h])
    coldest = min(range(24), key=lambda h: hourly[h])
    assert 13 <= warmest <= 17  # peak hour 15:00 give or take the device's jitter
    assert coldest in (*range(1, 6),)
    assert hourly[warmest] - hourly[coldest] > 5.0  # the 2 x 4 degree swing, noise aside


@pytest.mark.parametrize(("share", "kind"), [(0.0, MetricKind.HUMIDITY), (0.1, MetricKind.POWER)])
def test_dropouts_happen_at_the_configured_share(share: float, kind: MetricKind) -> None:
    values = samples(kind, shares=Shares(spike=0.0, dropout=share))
    dropped = sum(v is None for v in values) / len(values)
    assert dropped == pytest.approx(share, abs=0.015)


def test_spikes_happen_at_the_configured_share() -> None:
    signal = Signal(MetricKind.TEMPERATURE, seed=11, shares=Shares(spike=0.05, dropout=0.0))
    values = [signal.sample(t) for t in DAY]
    # A spike is 12 degrees; noise (0.15) and drift stay far below half of it.
    spikes = sum(abs(v - signal.cycle(t)) > 6.0 for t, v in zip(DAY, values, strict=True) if v)
    assert spikes / len(DAY) == pytest.approx(0.05, abs=0.01)


def test_without_spikes_values_stay_near_the_cycle() -> None:
    signal = Signal(MetricKind.VIBRATION, seed=5, shares=Shares(spike=0.0, dropout=0.0))
    for t in DAY:
        value = signal.sample(t)
        assert value is not None
        assert abs(value - signal.cycle(t)) < 1.0


def test_a_device_sends_every_kind_and_skips_dropped_ones() -> None:
    full = DeviceSignals(seed=1, shares=Shares(dropout=0.0)).sample(T0)
    assert set(full) == {k.value for k in MetricKind}
    assert DeviceSignals(seed=1, shares=Shares(dropout=1.0)).sample(T0) == {}


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_shares_outside_zero_to_one_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="share"):
        Shares(spike=bad)


def test_percentiles_use_the_nearest_rank() -> None:
    ordered = [float(i) for i in range(1, 101)]
    assert percentile(ordered, 50) == 50.0
    assert percentile(ordered, 99) == 99.0
    assert percentile([], 50) is None
