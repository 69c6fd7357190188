"""The SQLAlchemy pool internal telehub overrides is still there, as it uses it.

telehub/storage/database.py gives the PostgreSQL engine a queue pool whose
private ``_do_get`` turns "no connection was free within pool_timeout" into
StorageTimeout (a 503 with Retry-After, not a 500). A release that renames
``_do_get``, stops calling it on checkout, or times out another way would turn
an exhausted pool back into an unexplained error; this fails first, naming the
module to revisit.
"""

from __future__ import annotations

import contextlib
import inspect

import pytest
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import AsyncAdaptedQueuePool, QueuePool, base

from telehub.config import load_settings
from telehub.errors import StorageTimeout
from telehub.storage import database
from telehub.storage.database import create_engine
from tests.conftest import PG_URL
from tests.support.pins import assert_pinned

DATABASE = "telehub/storage/database.py (_Pool)"


def test_sqlalchemy_is_the_release_the_pool_was_written_for() -> None:
    assert_pinned("sqlalchemy", "2.1", revisit=DATABASE)


def test_the_overridden_method_is_the_one_a_checkout_calls() -> None:
    assert database._Pool.__mro__[1] is AsyncAdaptedQueuePool, f"revisit {DATABASE}"
    assert "_do_get" in vars(QueuePool), f"QueuePool no longer has _do_get: revisit {DATABASE}"
    assert list(inspect.signature(QueuePool._do_get).parameters) == ["self"], DATABASE
    assert "pool._do_get()" in inspect.getsource(base._ConnectionRecord.checkout), (
        f"a checkout no longer goes through _do_get: revisit {DATABASE}"
    )


def test_an_exhausted_pool_raises_the_timeout_error_caught() -> None:
    """_Pool catches sqlalchemy.exc.TimeoutError, raised by QueuePool._do_get itself."""
    assert database.PoolTimeout is exc.TimeoutError
    assert "raise exc.TimeoutError(" in inspect.getsource(QueuePool._do_get), (
        f"QueuePool times out another way: revisit {DATABASE}"
    )


@pytest.mark.services
async def test_waiting_past_pool_timeout_for_a_connection_is_storage_timeout() -> None:
    settings = load_settings(
        database_url=PG_URL, database_pool_size=1, database_statement_timeout_seconds=0.3
    )
    engine = create_engine(settings)
    held: list[AsyncConnection] = []

    async def take_every_connection() -> None:
        for _ in range(50):  # the pool's size and its overflow (10 by default) are fewer
            held.append(await engine.connect())

    try:
        with pytest.raises(StorageTimeout, match="no database connection was free in time"):
            await take_every_connection()
        assert len(held) > 1, f"revisit {DATABASE}"
    finally:
        for conn in held:
            with contextlib.suppress(Exception):
                await conn.close()
        await engine.dispose()
