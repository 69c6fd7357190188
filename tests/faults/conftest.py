"""Fault tests: real clients and real processes pushing the hub where it used to break."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tests.mqtt.embedded_support import embedded

__all__ = ["embedded"]  # the fixture


@pytest.fixture(autouse=True)
def _collected_after() -> Iterator[None]:
    """Collect garbage as each test ends, so a resource it left open (a database
    connection cut off by a shutdown) fails that test, with its name, instead of a
    later one whenever the collector happens to run."""
    yield
    gc.collect()
