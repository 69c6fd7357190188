"""The REST calls both SDKs make, described once: method, path, body, and how to read
the answer. The sync client (requests) and the async one (aiohttp) only carry them,
so the same call gives the same result, and the same error, on both.

Retries: a call is retried on no answer or a 502/504 only when it is idempotent
(every GET, PUT, DELETE, and telemetry: a resent batch is stored once), and on
429/503 always (nothing was accepted), after ``Retry-After`` when the server
gave one, else capped exponential backoff with full jitter.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote

import orjson
from pydantic import BaseModel

from telehub.api.command_schemas import BatchOut, CommandOut, CommandPage
from telehub.api.info_schemas import HubInfo
from telehub.api.schemas import (
    DeviceCreated,
    DeviceOut,
    DevicePage,
    DeviceToken,
    IngestAccepted,
    LatestOut,
    RejectedPage,
    SeriesOut,
    TokenCreated,
    TokenOut,
)
from telehub.client.errors import ValidationFailed

T = TypeVar("T")
I_co = TypeVar("I_co", covariant=True)
R_co = TypeVar("R_co", covariant=True)
_RETRY_STATUS = frozenset({429, 503})
_GATEWAY_STATUS = frozenset({502, 504})


@dataclass(frozen=True, slots=True)
class Call(Generic[R_co]):
    method: str
    path: str
    read: Callable[[Any], R_co]
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    idempotent: bool = False
    expect_body: bool = True

    def __post_init__(self) -> None:
        # Every body is checked here, as the call is made: no call can forget it.
        if self.json is not None:
            _check_json(self.json)

    def content(self) -> bytes | None:
        """The JSON body as both clients send it, byte for byte (checked when made)."""
        return None if self.json is None else orjson.dumps(self.json)

    def headers(self) -> dict[str, str] | None:
        return None if self.json is None else {"Content-Type": "application/json"}


class Paged(Protocol[I_co]):
    """A page of a listing: its items and the cursor of the next page (None: the last)."""

    @property
    def items(self) -> Sequence[I_co]: ...
    @property
    def next(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    base: float = 0.2
    cap: float = 5.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before attempt ``attempt + 1`` (attempt counts from 0)."""
        if retry_after is not None:
            return min(retry_after, self.cap * 6)
        return random.uniform(0, min(self.cap, self.base * 2**attempt))

    def retries_status(self, call: Call[Any], status: int) -> bool:
        return status in _RETRY_STATUS or (call.idempotent and status in _GATEWAY_STATUS)


def retry_after(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None


def _segment(value: str, name: str = "device_id") -> str:
    """An id as one path segment: escaped, and never a dot segment that would climb
    (refused before sending, as the server refuses a bad id: ValidationFailed)."""
    if value in ("", ".", ".."):
        raise ValidationFailed(
            422,
            f"refused before sending: {value!r} cannot be an id",
            "invalid-input",
            errors=[{"detail": "not an id", "parameter": name}],
        )
    return quote(value, safe="")


def _model(cls: type[BaseModel]) -> Callable[[Any], Any]:
    return cls.model_validate


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


_JSON_SCALARS = (str, bool, type(None))
_INT_RANGE = range(-(2**63), 2**64)  # what JSON parsers (orjson, the server's) take


def _pointer(path: Sequence[str | int]) -> str:
    """RFC 6901 in URI-fragment form, as the server writes its pointers (``#/values/t``)."""
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _json_problems(value: Any, path: list[str | int], out: list[dict[str, str]]) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            out.append({"detail": "must be a finite number", "pointer": _pointer(path)})
    elif isinstance(value, _JSON_SCALARS):
        return
    elif isinstance(value, int):
        if value not in _INT_RANGE:
            out.append({"detail": "integer out of the 64-bit range", "pointer": _pointer(path)})
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                out.append({"detail": "keys must be strings", "pointer": _pointer(path)})
                return
            _json_problems(item, [*path, key], out)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _json_problems(item, [*path, index], out)
    else:
        detail = f"a {type(value).__name__} is not a JSON value"
        out.append({"detail": detail, "pointer": _pointer(path)})


def _check_json(body: Any) -> None:
    """ValidationFailed naming each field of ``body`` that JSON cannot carry.

    Refused here, before anything is sent, so both clients refuse it alike: JSON has
    no NaN or infinities (a server would refuse them too), nor dates or sets. The
    error is the server's own shape: 422, ``invalid-input``, a pointer per field.
    """
    found: list[dict[str, str]] = []
    _json_problems(body, [], found)
    if found:
        raise ValidationFailed(
            422,
            "refused before sending: the body holds values JSON cannot carry",
            "invalid-input",
            errors=found,
        )


def create_device(
    device_id: str | None, name: str | None, attributes: Mapping[str, Any] | None
) -> Call[DeviceCreated]:
    body = {"id": device_id, "name": name, "attributes": dict(attributes or {})}
    return Call("POST", "/api/v1/devices", _model(DeviceCreated), json=_clean(body))


def get_device(device_id: str) -> Call[DeviceOut]:
    return Call("GET", f"/api/v1/devices/{_segment(device_id)}", _model(DeviceOut), idempotent=True)


def device_page(
    after: str | None, limit: int, attributes: Mapping[str, str] | None
) -> Call[DevicePage]:
    params: dict[str, Any] = {"after": after, "limit": limit}
    if attributes:
        params["attribute"] = [f"{k}:{v}" for k, v in attributes.items()]
    return Call("GET", "/api/v1/devices", _model(DevicePage), _clean(params), idempotent=True)


def update_device(
    device_id: str, name: str | None, attributes: Mapping[str, Any] | None
) -> Call[DeviceOut]:
    body = _clean(
        {"name": name, "attributes": dict(attributes) if attributes is not None else None}
    )
    path = f"/api/v1/devices/{_segment(device_id)}"
    return Call("PATCH", path, _model(DeviceOut), json=body)


def delete_device(device_id: str) -> Call[None]:
    return Call(
        "DELETE",
        f"/api/v1/devices/{_segment(device_id)}",
        lambda _: None,
        idempotent=True,
        expect_body=False,
    )


def rotate_device_token(device_id: str) -> Call[DeviceToken]:
    return Call("POST", f"/api/v1/devices/{_segment(device_id)}/token", _model(DeviceToken))


def send_telemetry(
    device_id: str, values: Mapping[str, Any] | list[Mapping[str, Any]], ts: datetime | None
) -> Call[IngestAccepted]:
    """One message (``values``, optionally at ``ts``) or a list of full messages."""
    body: Any = (
        [dict(m) for m in values]
        if isinstance(values, list)
        else _clean({"ts": _iso(ts), "values": dict(values)})
    )
    # Idempotent: a resent batch is stored once and reported as duplicates.
    return Call(
        "POST",
        f"/api/v1/devices/{_segment(device_id)}/telemetry",
        _model(IngestAccepted),
        json=body,
        idempotent=True,
    )


def query(
    device_id: str,
    *,
    metrics: list[str] | None,
    start: datetime | None,
    end: datetime | None,
    interval: str | None,
    agg: str | None,
    limit: int | None,
    order: str | None = None,
    cursor: str | None = None,
) -> Call[SeriesOut]:
    """A page of the query; with ``cursor`` (a page's ``next``), the page after that one:
    the cursor holds the query, so only the page size (``limit``) goes with it."""
    if cursor is not None:
        params = _clean({"cursor": cursor, "limit": limit})
    else:
        params = _clean(
            {
                "metric": metrics,
                "from": _iso(start),
                "to": _iso(end),
                "interval": interval,
                "agg": agg,
                "limit": limit,
                "order": order,
            }
        )
    return Call(
        "GET",
        f"/api/v1/devices/{_segment(device_id)}/telemetry",
        _model(SeriesOut),
        params,
        idempotent=True,
    )


def latest(device_id: str) -> Call[LatestOut]:
    return Call(
        "GET", f"/api/v1/devices/{_segment(device_id)}/latest", _model(LatestOut), idempotent=True
    )


def info() -> Call[HubInfo]:
    return Call("GET", "/api/v1/info", _model(HubInfo), idempotent=True)


def delete_state(device_id: str, key: str) -> Call[None]:
    return Call(
        "DELETE",
        f"/api/v1/devices/{_segment(device_id)}/state/{_segment(key)}",
        lambda _: None,
        idempotent=True,
        expect_body=False,
    )


def rejected(before: int | None, limit: int, device_id: str | None) -> Call[RejectedPage]:
    params = _clean({"before": before, "limit": limit, "device_id": device_id})
    return Call("GET", "/api/v1/rejected", _model(RejectedPage), params, idempotent=True)


def send_command(
    device_id: str, name: str, params: Mapping[str, Any] | None, ttl_s: int | None
) -> Call[CommandOut]:
    body = _clean({"name": name, "params": dict(params or {}), "ttl_s": ttl_s})
    path = f"/api/v1/devices/{_segment(device_id)}/commands"
    return Call("POST", path, _model(CommandOut), json=body)


def get_command(device_id: str, command_id: str) -> Call[CommandOut]:
    path = f"/api/v1/devices/{_segment(device_id)}/commands/{_segment(command_id, 'command_id')}"
    return Call("GET", path, _model(CommandOut), idempotent=True)


def command_page(device_id: str, before: str | None, limit: int) -> Call[CommandPage]:
    params = _clean({"before": before, "limit": limit})
    path = f"/api/v1/devices/{_segment(device_id)}/commands"
    return Call("GET", path, _model(CommandPage), params, idempotent=True)


def bulk_command(
    *,
    devices: list[str] | None,
    attributes: Mapping[str, str] | None,
    name: str,
    params: Mapping[str, Any] | None,
    ttl_s: int | None,
) -> Call[BatchOut]:
    body = _clean(
        {
            "devices": devices,
            "attributes": dict(attributes) if attributes is not None else None,
            "name": name,
            "params": dict(params or {}),
            "ttl_s": ttl_s,
        }
    )
    return Call("POST", "/api/v1/commands", _model(BatchOut), json=body)


def get_batch(batch_id: str) -> Call[BatchOut]:
    return Call(
        "GET",
        f"/api/v1/commands/{_segment(batch_id, 'batch_id')}",
        _model(BatchOut),
        idempotent=True,
    )


def create_token(name: str, scope: str) -> Call[TokenCreated]:
    body = {"name": name, "scope": scope}
    return Call("POST", "/api/v1/tokens", _model(TokenCreated), json=body)


def list_tokens() -> Call[list[TokenOut]]:
    return Call(
        "GET",
        "/api/v1/tokens",
        lambda body: [TokenOut.model_validate(t) for t in body],
        idempotent=True,
    )


def delete_token(token_id: str) -> Call[None]:
    return Call(
        "DELETE",
        f"/api/v1/tokens/{_segment(token_id, 'token_id')}",
        lambda _: None,
        idempotent=True,
        expect_body=False,
    )


@dataclass(frozen=True, slots=True)
class Waiting:
    """How ``wait_command`` polls: quickly at first, then every ``most`` seconds."""

    first: float = 0.1
    most: float = 1.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(self.most, delay * 2)


def merged(pages: Iterable[SeriesOut]) -> SeriesOut | None:
    """The pages of one query as one answer (None: no pages)."""
    first: SeriesOut | None = None
    series: dict[str, list[Any]] = {}
    for page in pages:
        first = first or page
        for metric, points in page.series.items():
            series.setdefault(metric, []).extend(points)
    if first is None:
        return None
    return first.model_copy(update={"series": series, "truncated": [], "next": None})
