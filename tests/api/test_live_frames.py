"""Readings frames: made once per run of messages and subscription, right for every filter."""

from __future__ import annotations

import orjson

from telehub.api.live_frames import FrameCache
from telehub.domain.live import Filter, LiveReadings
from telehub.domain.readings import Reading, Telemetry

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def commit(*readings: tuple[str, str, float]) -> LiveReadings:
    by_device: dict[str, list[Reading]] = {}
    for i, (device_id, metric, value) in enumerate(readings):
        by_device.setdefault(device_id, []).append(Reading(device_id, metric, T0 + i, value))
    return LiveReadings(
        items=tuple(Telemetry(d, tuple(rs), ()) for d, rs in by_device.items()),
        committed_us=T0,
    )


EVERYTHING = Filter(None, None)


def test_one_frame_per_run_of_messages_for_every_client_with_that_subscription() -> None:
    cache = FrameCache()
    run = [commit(("a", "t", 1.0)), commit(("b", "t", 2.0))]
    first = cache.readings(run, "s", EVERYTHING)
    again = cache.readings(list(run), "s", EVERYTHING)  # another client, same messages
    assert first is not None
    assert again is first
    body = orjson.loads(first)
    assert body == {
        "type": "readings",
        "id": "s",
        "readings": [
            {"device_id": "a", "metric": "t", "ts": "2026-01-01T00:00:00Z", "value": 1.0},
            {"device_id": "b", "metric": "t", "ts": "2026-01-01T00:00:00Z", "value": 2.0},
        ],
    }
    # A different run (one more message), id or filter is a different frame.
    assert cache.readings([*run, commit(("a", "t", 3.0))], "s", EVERYTHING) != first
    assert orjson.loads(cache.readings(run, 7, EVERYTHING) or "")["id"] == 7


def test_filters_choose_devices_and_metrics_and_nothing_wanted_is_no_frame() -> None:
    cache = FrameCache()
    run = [commit(("a", "t", 1.0), ("a", "h", 5.0), ("b", "t", 2.0))]
    only_a = orjson.loads(cache.readings(run, "x", Filter(frozenset({"a"}), None)) or "")
    temps = orjson.loads(cache.readings(run, "y", Filter(None, frozenset({"t"}))) or "")
    assert [(r["device_id"], r["metric"]) for r in only_a["readings"]] == [("a", "t"), ("a", "h")]
    assert [(r["device_id"], r["metric"]) for r in temps["readings"]] == [("a", "t"), ("b", "t")]
    assert cache.readings(run, "z", Filter(frozenset({"c"}), None)) is None


def test_the_cache_stays_bounded() -> None:
    cache = FrameCache(size=4)
    runs = [[commit(("a", "t", float(i)))] for i in range(10)]
    for run in runs:
        cache.readings(run, "s", EVERYTHING)
    assert len(cache._frames) == 4
