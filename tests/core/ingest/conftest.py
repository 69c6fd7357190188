"""The ingest tests' ``hub``: the shared running hub with their devices registered."""

from __future__ import annotations

import pytest

from telehub.hub import Hub
from tests.core.ingest.support import register


@pytest.fixture
async def hub(hub: Hub) -> Hub:
    """The store keeps readings of registered devices only."""
    await register(hub)
    return hub
