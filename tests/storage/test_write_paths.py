"""Which way a batch is committed, proven by the metric that counts each way.

Every fast path here is a choice the writer makes per batch (core/batching.py
holds the thresholds): SQLite inline on the event loop or on its thread, and
the pause after inline commits go over budget; PostgreSQL one statement, COPY,
or the resend path through a staging table, and a reconnect on either
connection. Each test sets the threshold, writes, and reads
``telehub_ingest_commits_total{path=…}``: a path that silently stopped being
taken fails here, not only in a benchmark.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import text

from telehub.config import Settings
from telehub.domain.readings import Reading, Telemetry, now_us
from telehub.hub import Hub, open_hub
from telehub.storage.store import SqlStore
from tests.core.ingest.support import register, stored

MakeSettings = Callable[..., Settings]


def batch(device_id: str, metric: str, count: int) -> Telemetry:
    """``count`` readings of the last few seconds: too recent to touch rollups, which
    would send any batch the long way (storage/late_readings.py)."""
    start = now_us() - count
    return Telemetry(
        device_id=device_id,
        readings=tuple(Reading(device_id, metric, start + i, float(i)) for i in range(count)),
        state=(),
    )


def commits(hub: Hub) -> dict[str, float]:
    """Commits so far by path (only the paths taken)."""
    out: dict[str, float] = {}
    for metric in hub.metrics.registry.collect():
        if metric.name == "telehub_ingest_commits":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.value:
                    out[sample.labels["path"]] = sample.value
    return out


@pytest.fixture
async def tuned(make_settings: MakeSettings) -> AsyncIterator[Callable[..., object]]:
    """Open a hub with ``ingest_*`` overrides (one at a time), devices registered."""
    opened: list[object] = []

    async def open_with(**overrides: object) -> Hub:
        context = open_hub(make_settings(**overrides))
        hub = await context.__aenter__()
        opened.append(context)
        await register(hub)
        return hub

    yield open_with
    for context in reversed(opened):
        await context.__aexit__(None, None, None)  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_commits_a_small_batch_inline_and_a_large_one_on_its_thread(
    tuned: Callable[..., object],
) -> None:
    hub: Hub = await tuned(ingest_inline_values=10)  # type: ignore[misc]
    await hub.ingestor.submit(batch("dev-a", "small", 10))
    assert commits(hub) == {"sqlite-inline": 1}
    await hub.ingestor.submit(batch("dev-a", "large", 11))
    assert commits(hub) == {"sqlite-inline": 1, "sqlite-thread": 1}
    assert len(await stored(hub.store.readings, "dev-a", "small")) == 10
    assert len(await stored(hub.store.readings, "dev-a", "large")) == 11


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_inline_values_zero_sends_every_batch_to_the_thread(
    tuned: Callable[..., object],
) -> None:
    hub: Hub = await tuned(ingest_inline_values=0)  # type: ignore[misc]
    for n in range(3):
        await hub.ingestor.submit(batch("dev-a", f"m{n}", 1))
    assert commits(hub) == {"sqlite-thread": 3}


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_inline_commits_over_budget_pause_for_the_set_number_of_batches(
    tuned: Callable[..., object],
) -> None:
    """A budget no commit can meet (a slow disk, as it looks to the writer): the first
    inline commit is over it, so the next batches go to the thread, then inline again."""
    hub: Hub = await tuned(  # type: ignore[misc]
        ingest_inline_budget_ms=0.000001, ingest_inline_pause_batches=2
    )
    for n in range(4):
        await hub.ingestor.submit(batch("dev-a", f"m{n}", 1))
    assert commits(hub) == {"sqlite-inline": 2, "sqlite-thread": 2}


@pytest.mark.services
@pytest.mark.parametrize("backend", ["postgres"])
async def test_postgres_small_batches_are_one_statement_large_ones_copy_resends_merge(
    tuned: Callable[..., object],
) -> None:
    hub: Hub = await tuned(ingest_one_statement_rows=10)  # type: ignore[misc]
    await hub.ingestor.submit(batch("dev-a", "small", 9))
    assert commits(hub) == {"postgres-one-statement": 1}
    large = batch("dev-a", "large", 10)
    assert (await hub.ingestor.submit(large)).accepted == 10
    assert commits(hub) == {"postgres-one-statement": 1, "postgres-copy": 1}
    resent = await hub.ingestor.submit(large)
    assert (resent.accepted, resent.duplicates) == (0, 10)
    assert commits(hub) == {
        "postgres-one-statement": 1,
        "postgres-copy": 1,
        "postgres-resend": 1,
    }


@pytest.mark.services
@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.parametrize(
    ("readings", "path"), [(3, "postgres-one-statement"), (20, "postgres-copy")]
)
async def test_postgres_each_path_reconnects_after_its_session_is_killed(
    tuned: Callable[..., object], readings: int, path: str
) -> None:
    hub: Hub = await tuned(ingest_one_statement_rows=10)  # type: ignore[misc]
    assert (await hub.ingestor.submit(batch("dev-a", "t", readings))).accepted == readings
    async with hub.store.engine.connect() as conn:
        killed = await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": f"telehub-writer/{hub.settings.database_schema}"},
        )
        assert killed.all() == [(True,)]
    assert (await hub.ingestor.submit(batch("dev-a", "u", readings))).accepted == readings
    assert commits(hub) == {path: 2}
    assert len(await stored(hub.store.readings, "dev-a", "u")) == readings


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(("turns", "commits_made"), [(0, 2), (4, 1)])
async def test_gather_turns_let_a_request_read_meanwhile_join_the_commit(
    tuned: Callable[..., object], turns: int, commits_made: int
) -> None:
    """A second submission that arrives two loop turns after the first (a request
    whose body was being read) shares the first's commit only while the writer gathers."""
    hub: Hub = await tuned(ingest_gather_turns=turns)  # type: ignore[misc]

    async def late_arrival() -> None:
        for _ in range(2):
            await asyncio.sleep(0)
        await hub.ingestor.submit(batch("dev-a", "second", 1))

    first = asyncio.create_task(hub.ingestor.submit(batch("dev-a", "first", 1)))
    second = asyncio.create_task(late_arrival())
    await asyncio.gather(first, second)
    assert sum(commits(hub).values()) == commits_made


async def test_building_a_store_starts_no_thread_and_closing_an_unused_one_is_clean(
    settings: Settings,
) -> None:
    """A CLI command that only migrates, or a library user, pays for no writer thread."""
    before = {t.name for t in threading.enumerate()}
    store = SqlStore(settings)
    assert {t.name for t in threading.enumerate()} == before
    await store.close()
    assert {t.name for t in threading.enumerate()} == before
