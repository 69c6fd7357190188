"""Devices, API tokens and the principals that credentials resolve to."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from telehub.domain.telemetry import all_finite, loc_to_pointer
from telehub.errors import FieldError

DEVICE_TOKEN_PREFIX = "thd_"
API_TOKEN_PREFIX = "tha_"

# Attributes describe a device (site, model, firmware, a location, a small
# config), they are no store. Generous for that: ThingsBoard keys go to 255
# characters, and Home Assistant's recorder keeps up to 16 KiB of attributes
# per entity. Sizes are of the compact JSON.
MAX_ATTRIBUTES = 128
MAX_ATTRIBUTE_KEY_CHARS = 255
MAX_ATTRIBUTE_VALUE_BYTES = 8 * 1024
MAX_ATTRIBUTES_BYTES = 16 * 1024


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
    """Who is calling: an API token with a scope, or one device (which may only ingest).

    ``credential``, for a device, is the hash of the token it presented: a live
    session keeps it, so that a rotation ends the sessions of the old token only.
    """

    scope: Scope | None
    token_id: str | None = None
    device_id: str | None = None
    credential: str | None = field(default=None, compare=False, repr=False)

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


def fingerprint(token_hash: str) -> str:
    """A short name of one token (the start of its hash), to tell it from a device's others.

    Enough to tell tokens apart, and far too little to look one up by: what a
    revocation carries across processes.
    """
    return token_hash[:16]


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


def attribute_errors(attributes: Mapping[str, Any]) -> list[FieldError]:
    """What is wrong with a device's attributes, each error pointing into ``#/attributes``."""
    if len(attributes) > MAX_ATTRIBUTES:
        return [FieldError(detail=f"at most {MAX_ATTRIBUTES} keys", pointer="#/attributes")]
    errors: list[FieldError] = []
    # The compact JSON's size, summed as it goes: braces, colons, commas, keys, values.
    total = 2 + len(attributes) + max(len(attributes) - 1, 0)
    for key, value in attributes.items():
        where = loc_to_pointer(["attributes", key])
        if not 1 <= len(key) <= MAX_ATTRIBUTE_KEY_CHARS:
            detail = f"keys are 1 to {MAX_ATTRIBUTE_KEY_CHARS} characters"
            errors.append(FieldError(detail=detail, pointer=where))
        try:
            finite = all_finite(value)
            size = _json_bytes(value)
        except RecursionError:
            errors.append(FieldError(detail="nested too deeply", pointer=where))
            continue
        if not finite:
            # JSON has no NaN (it would be stored as null): refuse rather than change it.
            errors.append(FieldError(detail="numbers must be finite", pointer=where))
        elif size > MAX_ATTRIBUTE_VALUE_BYTES:
            detail = f"at most {MAX_ATTRIBUTE_VALUE_BYTES} bytes as JSON"
            errors.append(FieldError(detail=detail, pointer=where))
        total += _json_bytes(key) + size
    if not errors and total > MAX_ATTRIBUTES_BYTES:
        detail = f"at most {MAX_ATTRIBUTES_BYTES} bytes as JSON in all"
        errors.append(FieldError(detail=detail, pointer="#/attributes"))
    return errors


def _json_bytes(value: Any) -> int:
    """The size of ``value`` as compact UTF-8 JSON (json, not orjson: any size of integer)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
