"""How the writer groups submissions into commits: company is waited for only while it comes."""

from __future__ import annotations

import asyncio

from telehub.hub import Hub
from tests.core.ingest.support import batch, make_ingestor, sample, writer


def commits(metrics: object) -> float:
    return sample(metrics, "telehub_ingest_batch_readings_count") or 0.0  # type: ignore[arg-type]


async def test_submissions_arriving_together_share_one_commit(hub: Hub) -> None:
    ingestor, metrics = make_ingestor(hub, max_wait=5.0, quiet=0.2)
    async with writer(ingestor):
        tickets = [ingestor.offer([batch(f"dev-{c}", "t", 3)]) for c in "abcde"]
        answers = [await t.answers() for t in tickets]
    assert [a[0].accepted for a in answers] == [3] * 5  # type: ignore[union-attr]
    assert commits(metrics) == 1


async def test_a_steady_trickle_keeps_the_commit_waiting_up_to_max_wait(hub: Hub) -> None:
    ingestor, metrics = make_ingestor(hub, max_wait=5.0, quiet=0.3)
    async with writer(ingestor):
        tickets = []
        for c in "abcd":  # each well inside the quiet period of the one before
            tickets.append(ingestor.offer([batch(f"dev-{c}", "t", 2)]))
            await asyncio.sleep(0.02)
        for t in tickets:
            await t.answers()
    assert commits(metrics) == 1


async def test_a_lone_submission_does_not_wait_for_max_wait(hub: Hub) -> None:
    """After ``quiet`` without company it commits alone: the next one gets its own commit."""
    ingestor, metrics = make_ingestor(hub, max_wait=60.0, quiet=0.01)
    async with writer(ingestor):
        first = ingestor.offer([batch("dev-a", "t", 1)])
        # Had the writer waited max_wait (a minute), this would not return before the timeout.
        async with asyncio.timeout(20):
            await first.answers()
        second = ingestor.offer([batch("dev-b", "t", 1)])
        async with asyncio.timeout(20):
            await second.answers()
    assert commits(metrics) == 2


async def test_a_full_batch_commits_without_waiting(hub: Hub) -> None:
    ingestor, metrics = make_ingestor(hub, batch_readings=10, max_wait=60.0, quiet=60.0)
    async with writer(ingestor):
        ticket = ingestor.offer([batch("dev-a", "t", 6), batch("dev-b", "t", 4)])
        async with asyncio.timeout(20):
            answers = await ticket.answers()
    assert [a.accepted for a in answers] == [6, 4]  # type: ignore[union-attr]
    assert commits(metrics) == 1


async def test_without_a_linger_requests_read_a_loop_turn_later_still_share_the_commit(
    hub: Hub,
) -> None:
    """The writer lets the loop take a few turns before cutting the batch (no clock involved)."""
    ingestor, metrics = make_ingestor(hub)  # quiet=0: no linger
    async with writer(ingestor):
        await asyncio.sleep(0)  # the writer now waits for work
        first = ingestor.offer([batch("dev-a", "t", 1)])
        await asyncio.sleep(0)  # a turn later, as a request read meanwhile would be
        second = ingestor.offer([batch("dev-b", "t", 1)])
        async with asyncio.timeout(20):
            await first.answers()
            await second.answers()
    assert commits(metrics) == 1
