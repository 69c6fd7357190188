"""Devices, API tokens and the principals that credentials resolve to."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DEVICE_TOKEN_PREFIX = "thd_"
API_TOKEN_PREFIX = "tha_"


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    created_us: int = 0
    last_seen_us: int | None = None
    online: bool | None = None  # None: never reported presence
    presence_us: int | None = None  # when ``online`` last changed


class Scope(StrEnum):
    """API token scopes, each including the ones below it: admin ⊃ write ⊃ read."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    def allows(self, needed: Scope) -> bool:
        order = (Scope.READ, Scope.WRITE, Scope.ADMIN)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str
    name: str
    scope: Scope
    created_us: int


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API token with a scope, or one device (which may only ingest)."""

    scope: Scope | None
    token_id: str | None = None
    device_id: str | None = None

    def can_write_device(self, device_id: str) -> bool:
        if self.device_id is not None:
            return self.device_id == device_id
        return self.scope is not None and self.scope.allows(Scope.WRITE)


def new_secret(prefix: str) -> str:
    """A 256-bit random bearer credential; the prefix tells a leaked token's kind at a glance."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """Tokens are random and long, so a fast unsalted hash is enough to keep them unrecoverable."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RejectedInput:
    """A bad input kept for inspection: what came, from where, and why it was refused."""

    id: int
    received_us: int
    transport: str
    device_id: str | None
    reason: str
    detail: str
    excerpt: str
