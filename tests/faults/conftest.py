"""Fault tests: real clients and real processes pushing the hub where it used to break."""

from __future__ import annotations

from tests.mqtt.embedded_support import embedded

__all__ = ["embedded"]  # the fixture
