"""What a WebSocket client may send: one JSON object per message, told apart by ``op``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from telehub.api.command_schemas import CommandName, TtlSeconds
from telehub.api.schemas import DeviceId
from telehub.domain.commands import DEFAULT_TTL_S
from telehub.domain.readings import DEVICE_ID_PATTERN, METRIC_NAME_PATTERN
from telehub.domain.telemetry import loc_to_pointer
from telehub.errors import FieldError, InvalidInput

MAX_SUBSCRIPTIONS = 100
MAX_FILTER_ITEMS = 1000

ClientId = Annotated[
    str | int,
    Field(description="the client's name for a subscription or request; echoed in replies"),
]
DeviceSelector = Annotated[
    str, StringConstraints(pattern=rf"^\*$|{DEVICE_ID_PATTERN}"), Field(description='"*" = all')
]
MetricName = Annotated[str, StringConstraints(pattern=METRIC_NAME_PATTERN)]


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Subscribe(_Op):
    op: Literal["subscribe"]
    id: ClientId
    devices: list[DeviceSelector] = Field(min_length=1, max_length=MAX_FILTER_ITEMS)
    metrics: list[MetricName] | None = Field(None, min_length=1, max_length=MAX_FILTER_ITEMS)


class Unsubscribe(_Op):
    op: Literal["unsubscribe"]
    id: ClientId


class SendCommand(_Op):
    op: Literal["command"]
    id: ClientId | None = None
    device_id: DeviceId
    name: CommandName
    params: dict[str, Any] = Field(default_factory=dict)
    ttl_s: TtlSeconds = DEFAULT_TTL_S


class Ping(_Op):
    op: Literal["ping"]
    id: ClientId | None = None


ClientMessage = Annotated[Subscribe | Unsubscribe | SendCommand | Ping, Field(discriminator="op")]
_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


def parse(raw: str | bytes) -> ClientMessage:
    """Raises InvalidInput with a JSON pointer to each offending field."""
    try:
        return _ADAPTER.validate_json(raw)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = list(err["loc"])
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc = ["op"]
            elif loc and loc[0] in ("subscribe", "unsubscribe", "command", "ping"):
                loc = loc[1:]  # the union branch, not part of the message
            if err["type"] == "json_invalid":
                errors.append(FieldError(detail="not valid JSON", pointer="#"))
                continue
            detail = str(err["msg"]).removeprefix("Value error, ")
            errors.append(FieldError(detail=detail, pointer=loc_to_pointer(loc)))
        raise InvalidInput("the message is invalid", errors) from None


def request_id(raw: str | bytes) -> str | int | None:
    """The ``id`` of a message that failed to parse, if it has a usable one."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    found = body.get("id") if isinstance(body, dict) else None
    return found if isinstance(found, str | int) and not isinstance(found, bool) else None
