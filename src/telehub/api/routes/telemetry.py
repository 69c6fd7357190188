"""Telemetry queries (people, dashboards).

Ingest, ``POST /api/v1/devices/{device_id}/telemetry``, is answered ahead of
the framework by api/telemetry_post.py; only its body schema lives here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from telehub.api.deps import ReadScope, TelemetryDep
from telehub.api.routes.devices import DevicePath
from telehub.api.schemas import (
    LatestOut,
    LatestReading,
    LatestState,
    PointOut,
    SeriesOut,
)
from telehub.core.ports import Aggregate
from telehub.core.telemetry import SeriesQuery
from telehub.domain.readings import from_micros
from telehub.domain.telemetry import TelemetryBody

router = APIRouter(prefix="/api/v1/devices", tags=["telemetry"])

TELEMETRY_BODY_SCHEMA = TelemetryBody.model_json_schema(ref_template="#/components/schemas/{model}")


@router.get("/{device_id}/telemetry", response_model=SeriesOut)
async def query_telemetry(
    device_id: DevicePath,
    telemetry: TelemetryDep,
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
    series = await telemetry.query(
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
async def latest_values(device_id: DevicePath, telemetry: TelemetryDep, _: ReadScope) -> LatestOut:
    """The newest value of every metric, and the device's state."""
    latest = await telemetry.latest(device_id)
    return LatestOut(
        device_id=device_id,
        readings={
            m: LatestReading(ts=from_micros(p.ts_us), value=p.value)
            for m, p in latest.readings.items()
        },
        state={k: LatestState(ts=from_micros(ts), value=v) for k, (ts, v) in latest.state.items()},
    )
