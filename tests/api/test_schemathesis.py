"""Every operation of the OpenAPI, fuzzed in-process: never a server error, always as documented.

The app owns a real hub (``create_app`` without ``hub`` opens one in its lifespan)
on a SQLite file seeded with an admin token and devices, so authenticated calls
reach the handlers instead of stopping at 401/404. Schemathesis runs the app's
lifespan on its own event loop thread; everything the hub owns lives there.
SQLite only: the storage contract is covered on both databases elsewhere.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi

from telehub.api.app import create_app
from telehub.config import Settings, load_settings
from telehub.domain.readings import DEVICE_ID_PATTERN
from telehub.domain.telemetry import parse_telemetry_json
from telehub.hub import open_hub

DEVICE = "fuzz-1"  # every operation on a device aims here
DOOMED = "fuzz-doomed"  # ...except DELETE, so the others keep a device to work on


async def _seed(settings: Settings) -> str:
    """Create the admin token and devices, with a few readings to query."""
    async with open_hub(settings) as hub:
        admin = await hub.tokens.bootstrap()
        assert admin is not None
        for device_id in (DEVICE, DOOMED):
            await hub.devices.create(device_id=device_id, name=None, attributes={"site": "north"})
        body = b'[{"ts": 1735689600000, "values": {"temperature": 21.5, "door": "open"}}]'
        telemetry = parse_telemetry_json(
            DEVICE,
            body,
            received_at=datetime.now(UTC),
            max_batch_readings=10,
            max_future_skew=300,
        )
        await hub.ingestor.submit(telemetry)
    return admin


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    """The app with a seeded database, and its admin token."""
    path = Path(tmp_path_factory.mktemp("fuzz")) / "telehub.db"
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{path}",
        ingest_batch_max_wait=0.0,
        auth_cache_seconds=0.0,
    )
    admin = asyncio.run(_seed(settings))
    yield create_app(settings), admin
    # Stop the app's lifespan (and so close its hub) now, not at interpreter exit.
    asgi.shutdown_lifespans()


# The schema is the app's own; only generating cases needs it at import, nothing connects.
schema = schemathesis.openapi.from_dict(
    create_app(load_settings(database_url="sqlite+aiosqlite:///unused.db")).openapi()
)
_VALID_ID = re.compile(DEVICE_ID_PATTERN)


# The SSE feed answers a valid request with a stream that never ends; its own tests
# (tests/live) cover it, errors included.
@schema.exclude(path="/api/v1/events").parametrize()
@settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_with_a_server_error(
    case: schemathesis.Case[Any], fuzz_app: tuple[FastAPI, str]
) -> None:
    app, admin = fuzz_app
    device_id = case.path_parameters.get("device_id")
    if isinstance(device_id, str) and _VALID_ID.match(device_id):
        case.path_parameters["device_id"] = DOOMED if case.method == "DELETE" else DEVICE

    response = case.call_and_validate(
        app=app,
        headers={"Authorization": f"Bearer {admin}"},
        checks=[not_a_server_error, response_schema_conformance, status_code_conformance],
    )

    # Whatever went wrong, the answer is the API's one error contract (RFC 9457).
    if response.status_code >= 400:
        assert response.headers["content-type"] == ["application/problem+json"]
        problem = response.json()
        assert problem["type"].startswith("urn:telehub:problem:")
        assert problem["status"] == response.status_code
