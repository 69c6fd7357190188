"""Every 503 and 429 the API sends says when to try again (RFC 9110 Retry-After).

Clients (the SDKs among them) wait that long before retrying; without it they
guess, and a fleet of devices retrying at once meets a hub that has not
recovered yet.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from telehub.api.problems import RETRY_STATUSES, problem, problem_of
from telehub.errors import (
    BrokerUnavailable,
    Overloaded,
    StorageTimeout,
    StorageUnavailable,
    TelehubError,
    error_code,
)
from tests.api.conftest import Api, at


def _every_error() -> list[TelehubError]:
    """One of each error of the core a client can be answered with (all that have a code)."""
    found: list[TelehubError] = []
    pending = [TelehubError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        error = _instance(cls)
        if error_code(error) != "internal":
            found.append(error)
    return found


def _instance(cls: type[TelehubError]) -> TelehubError:
    try:
        return cls("what went wrong")
    except TypeError:  # the push-back errors say when to come back themselves
        return cls("what went wrong", retry_after=2.0)  # type: ignore[call-arg]


def _retry_after(headers: dict[str, str] | object) -> int:
    value = dict(headers)["retry-after"]  # type: ignore[call-overload]
    assert value.isdigit(), value  # delay-seconds: a non-negative integer
    return int(value)


def test_every_error_answered_503_or_429_carries_retry_after() -> None:
    answered = set()
    for error in _every_error():
        response = problem_of(error, instance="/api/v1/x")
        if response.status_code in RETRY_STATUSES:
            assert _retry_after(response.headers) >= 1, type(error).__name__
            answered.add(type(error))
    assert {Overloaded, StorageUnavailable, StorageTimeout, BrokerUnavailable} <= answered


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
def test_any_problem_with_a_retry_status_carries_retry_after(status: int) -> None:
    """/readyz's 503 and whatever else answers one without an error of the core."""
    assert _retry_after(problem(status, "not-ready", "Not ready", "database").headers) >= 1
    given = problem(status, "overloaded", "Busy", "full", headers={"Retry-After": "7"})
    assert _retry_after(given.headers) == 7  # one given is kept


@pytest.mark.allow_error_logs  # the failed commit is logged with its traceback
async def test_a_telemetry_post_the_database_fails_is_503_with_retry_after(api: Api) -> None:
    token = await api.device()
    async with api.hub.store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE readings RENAME TO readings_away"))

    refused = await api.ingest(at(0, temperature=1.0), token)

    api.problem(refused, 503, "storage-unavailable")
    assert _retry_after(refused.headers) >= 1
    async with api.hub.store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE readings_away RENAME TO readings"))
    assert (await api.ingest(at(0, temperature=1.0), token)).status_code == 202
