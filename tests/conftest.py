"""Shared fixtures: every storage-backed test runs on SQLite and on real PostgreSQL.

PostgreSQL tests get a fresh schema each (dropped afterwards) in the ``test``
database; SQLite tests a copy of a database migrated once per run. When
PostgreSQL is not reachable they skip, unless ``TELEHUB_REQUIRE_SERVICES=1``
(set by ``.ci/run``), which makes that a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from telehub.config import Settings, load_settings
from telehub.hub import Hub, open_hub
from telehub.storage.store import SqlStore
from tests.live.support import LiveServer, live_server
from tests.tls_support import TlsFiles, make_tls_files

PG_URL = os.environ.get(
    "TELEHUB_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
RUN_ID = uuid.uuid4().hex[:8]
_schemas = itertools.count()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under TELEHUB_REQUIRE_SERVICES=1, a skipped ``services`` test is a failed one,
    whatever skipped it: CI must prove the service-backed tests ran."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if (
        report.skipped
        and os.environ.get("TELEHUB_REQUIRE_SERVICES") == "1"
        and item.get_closest_marker("services") is not None
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"services test skipped under TELEHUB_REQUIRE_SERVICES=1: {report.longrepr}"
        )


def require_service(name: str, reason: str) -> None:
    """Skip when a service is missing, or fail when CI demands that services exist."""
    message = f"{name} not available: {reason}"
    if os.environ.get("TELEHUB_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (TELEHUB_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def _pg_dsn() -> str:
    return PG_URL.replace("postgresql+asyncpg://", "postgresql://")


async def pg_exec(sql: str) -> None:
    """Run one statement on the test PostgreSQL (as its superuser, in the public schema)."""
    conn = await asyncpg.connect(_pg_dsn(), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _base_overrides() -> dict[str, object]:
    return {"ingest_batch_max_wait": 0.002, "auth_cache_seconds": 0.0}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def migrate(settings: Settings) -> None:
    """What ``telehub db upgrade`` does, in this process."""
    store = SqlStore(settings)
    try:
        await store.upgrade()
    finally:
        await store.close()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database the migrations built, once per run. Each test's SQLite database
    starts as a copy of it instead of running every migration again (~35 ms a hub, for
    hundreds of hubs); tests/storage/test_migrations.py checks what they build."""
    path = tmp_path_factory.mktemp("migrated") / "telehub.db"
    asyncio.run(migrate(load_settings(database_url=f"sqlite+aiosqlite:///{path}")))
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert not leftovers, f"a copy of telehub.db alone would miss {leftovers}"
    return path


@contextlib.contextmanager
def settings_factory(
    backend: str, directory: os.PathLike[str], migrated: Path | None = None
) -> Iterator[Callable[..., Settings]]:
    """A factory of settings for ``backend``, with overrides, on a database of their own
    (a file in ``directory``, or a fresh PostgreSQL schema dropped on exit). With
    ``migrated``, that file is a copy of it, made when the factory first hands it out."""
    schema: str | None = None
    if backend == "postgres":
        schema = f"t_{RUN_ID}_{next(_schemas)}"
        try:
            asyncio.run(pg_exec("SELECT 1"))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            require_service("PostgreSQL", f"{PG_URL}: {exc}")

    def factory(**overrides: object) -> Settings:
        values = _base_overrides() | overrides
        if backend == "postgres":
            values.setdefault("database_url", PG_URL)
            values.setdefault("database_schema", schema)
        elif "database_url" not in values:
            path = Path(directory) / "telehub.db"
            if migrated is not None and not path.exists():
                shutil.copyfile(migrated, path)
            values["database_url"] = f"sqlite+aiosqlite:///{path}"
        return load_settings(**values)

    try:
        yield factory
    finally:
        if schema is not None:
            asyncio.run(pg_exec(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture
def make_settings(
    backend: str, tmp_path: Path, migrated_sqlite: Path
) -> Iterator[Callable[..., Settings]]:
    """A factory of settings for this backend, with overrides; the database is the test's
    own (a fresh PostgreSQL schema, or a copy of ``migrated_sqlite``)."""
    with settings_factory(backend, tmp_path, migrated_sqlite) as factory:
        yield factory


@pytest.fixture
def settings(make_settings: object) -> Settings:
    return make_settings()  # type: ignore[operator,no-any-return]


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    async with open_hub(settings) as running:
        yield running


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    """A throwaway CA and a certificate it signed for 127.0.0.1 and localhost."""
    return make_tls_files(tmp_path / "tls")


@pytest.fixture
async def https_server(
    make_settings: Callable[..., Settings], tls: TlsFiles
) -> AsyncIterator[LiveServer]:
    """A hub serving its REST API over HTTPS with ``tls``'s certificate, on this loop."""
    async with open_hub(make_settings(**tls.settings())) as hub, live_server(hub) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_swallowed_exceptions(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Fail a test whose logs show an exception nobody expected."""
    caplog.set_level(logging.WARNING)
    yield
    if request.node.get_closest_marker("allow_error_logs"):
        return
    bad = [r for r in caplog.get_records("call") if r.exc_info and r.levelno >= logging.ERROR]
    if bad:
        pytest.fail(f"exception logged during the test: {bad[0].getMessage()}")
