"""Telemetry ingest (devices) and queries (people, dashboards)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, NoReturn

from fastapi import APIRouter, Query, Request, status

from telehub.api.deps import BearerDep, HubDep, ReadScope
from telehub.api.limits import BodyTooLarge, too_large_detail
from telehub.api.routes.devices import DevicePath
from telehub.api.schemas import (
    IngestAccepted,
    LatestOut,
    LatestReading,
    LatestState,
    PointOut,
    SeriesOut,
)
from telehub.core.ports import Aggregate
from telehub.core.telemetry import SeriesQuery
from telehub.domain.readings import from_micros
from telehub.domain.telemetry import TelemetryBody, parse_telemetry_json
from telehub.errors import FieldError, InvalidInput, PayloadTooLarge
from telehub.runtime import Hub

router = APIRouter(prefix="/api/v1/devices", tags=["telemetry"])

TELEMETRY_BODY_SCHEMA = TelemetryBody.model_json_schema(ref_template="#/components/schemas/{model}")


@router.post(
    "/{device_id}/telemetry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestAccepted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": TELEMETRY_BODY_SCHEMA}},
        }
    },
)
async def ingest_telemetry(
    device_id: DevicePath, request: Request, hub: HubDep, credentials: BearerDep
) -> IngestAccepted:
    """Store readings; answers 202 only after they are committed.

    Authenticate with the device's token or an API token of scope `write`.
    A resent batch is stored once and counted under `duplicates`.
    """
    secret = credentials.credentials if credentials else None
    try:
        raw = await request.body()
    except BodyTooLarge as exc:
        await refuse_too_large(hub, device_id, secret, head=exc.head, limit=exc.limit)
    return await accept_telemetry(hub, device_id, secret, raw)


async def accept_telemetry(
    hub: Hub, device_id: str, secret: str | None, raw: bytes
) -> IngestAccepted:
    """The whole of a telemetry POST, for this route and the framework-free fast path."""
    principal = await hub.auth.authenticate(secret)
    settings = hub.settings
    try:
        telemetry = parse_telemetry_json(
            device_id,
            raw,
            received_at=datetime.now(UTC),
            max_batch_readings=settings.max_batch_readings,
            max_future_skew=settings.max_future_skew_seconds,
        )
    except InvalidInput as exc:
        await hub.rejected.record(transport="http", device_id=device_id, error=exc, payload=raw)
        raise
    result = await hub.telemetry.ingest(principal, telemetry)
    return IngestAccepted(
        accepted=result.accepted, duplicates=result.duplicates, state=result.state
    )


async def refuse_too_large(
    hub: Hub, device_id: str, secret: str | None, *, head: bytes, limit: int
) -> NoReturn:
    """A telemetry POST whose body is over the limit, for this route and the fast path.

    Recorded as rejected input (only ``head``, the body's first bytes, was read) and
    counted, as an MQTT payload over the limit is; like any bad body, only once the
    sender has authenticated, so anyone without a token gets 401 and leaves no record.
    """
    await hub.auth.authenticate(secret)
    error = PayloadTooLarge(
        too_large_detail(limit), [FieldError(detail="payload too large", pointer="#")]
    )
    await hub.rejected.record(transport="http", device_id=device_id, error=error, payload=head)
    raise error


@router.get("/{device_id}/telemetry", response_model=SeriesOut)
async def query_telemetry(
    device_id: DevicePath,
    hub: HubDep,
    _: ReadScope,
    metric: Annotated[
        list[str] | None, Query(description="repeat for several; default: all metrics")
    ] = None,
    from_: Annotated[
        datetime | None, Query(alias="from", description="inclusive; default: to - 24 h")
    ] = None,
    to: Annotated[datetime | None, Query(description="exclusive; default: now")] = None,
    interval: Annotated[
        str | None, Query(description="bucket width, e.g. 30s, 1m, 1h, 1d; raw points if absent")
    ] = None,
    agg: Annotated[Aggregate, Query(description="aggregate per bucket")] = Aggregate.AVG,
    limit: Annotated[int, Query(ge=1, le=10_000, description="points per metric")] = 1000,
    order: Literal["asc", "desc"] = "asc",
) -> SeriesOut:
    """Readings of one device in a time range, optionally aggregated into buckets."""
    series = await hub.telemetry.query(
        device_id,
        SeriesQuery(
            metrics=metric,
            start=from_,
            end=to,
            interval=interval,
            agg=agg,
            limit=limit,
            desc=order == "desc",
        ),
    )
    return SeriesOut(
        device_id=device_id,
        interval=interval,
        agg=agg.value if interval else None,
        series={
            m: [PointOut(ts=from_micros(p.ts_us), value=p.value) for p in points]
            for m, points in series.items()
        },
    )


@router.get("/{device_id}/latest", response_model=LatestOut)
async def latest_values(device_id: DevicePath, hub: HubDep, _: ReadScope) -> LatestOut:
    """The newest value of every metric, and the device's state."""
    latest = await hub.telemetry.latest(device_id)
    return LatestOut(
        device_id=device_id,
        readings={
            m: LatestReading(ts=from_micros(p.ts_us), value=p.value)
            for m, p in latest.readings.items()
        },
        state={k: LatestState(ts=from_micros(ts), value=v) for k, (ts, v) in latest.state.items()},
    )
