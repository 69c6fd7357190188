"""Telemetry queries (people, dashboards).

Ingest, ``POST /api/v1/devices/{device_id}/telemetry``, is answered ahead of
the framework by api/telemetry_post.py; only its body schema lives here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

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
from telehub.core.telemetry import DEFAULT_LIMIT, MAX_POINTS, SeriesQuery
from telehub.domain.readings import from_micros
from telehub.domain.telemetry import TelemetryBody

router = APIRouter(prefix="/api/v1/devices", tags=["telemetry"])

TELEMETRY_BODY_SCHEMA = TelemetryBody.model_json_schema(ref_template="#/components/schemas/{model}")


@router.get("/{device_id}/telemetry", response_model=SeriesOut)
async def query_telemetry(
    request: Request,
    response: Response,
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
        str | None,
        Query(
            description="bucket width, e.g. 30s, 1m, 1h, 1d; raw points if absent. "
            f"At most {MAX_POINTS:,} buckets in the range"
        ),
    ] = None,
    agg: Annotated[
        Aggregate | None, Query(description="aggregate per bucket (needs interval); default avg")
    ] = None,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_POINTS,
            description=f"points per metric in a page; default {DEFAULT_LIMIT:,}. A metric "
            "with more is listed in `truncated`, and `next` is the cursor to the rest",
        ),
    ] = None,
    order: Annotated[
        Literal["asc", "desc"] | None, Query(description="by time; default asc")
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            description="`next` of the previous page: the rest of its query, alone or with "
            "the same parameters (limit may change)"
        ),
    ] = None,
) -> SeriesOut:
    """Readings of one device in a time range, optionally aggregated into buckets, in
    pages of at most `limit` points per metric."""
    page = await telemetry.page(
        device_id,
        SeriesQuery(
            metrics=metric,
            start=from_,
            end=to,
            interval=interval,
            agg=agg,
            limit=limit,
            desc=order == "desc" if order is not None else None,
            cursor=cursor,
        ),
    )
    if page.next is not None:
        response.headers["Link"] = (
            f'<{request.url.path}?{urlencode({"cursor": page.next})}>; rel="next"'
        )
    return SeriesOut(
        device_id=device_id,
        interval=page.interval,
        agg=page.agg.value if page.agg is not None else None,
        series={
            m: [PointOut(ts=from_micros(p.ts_us), value=p.value) for p in points]
            for m, points in page.series.items()
        },
        truncated=page.truncated,
        next=page.next,
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
