"""QueryService and DeviceService: reads, the same core calls as the REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC

from telehub.core.auth import Authenticator
from telehub.core.devices import DeviceService
from telehub.core.telemetry import SeriesQuery, TelemetryService
from telehub.domain.devices import Scope
from telehub.errors import FieldError, InvalidInput
from telehub.grpc import convert
from telehub.grpc.auth import Context, caller
from telehub.v1 import devices_pb2, devices_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
DEFAULT_PAGE = 100
MAX_PAGE = 1000


class QueryServicer(telemetry_pb2_grpc.QueryServiceServicer):
    def __init__(self, *, auth: Authenticator, telemetry: TelemetryService) -> None:
        self._auth = auth
        self._telemetry = telemetry

    async def Range(
        self, request: telemetry_pb2.RangeRequest, context: Context
    ) -> AsyncIterator[telemetry_pb2.Point]:
        await caller(self._auth, context, Scope.READ)
        if request.limit > MAX_LIMIT:
            raise InvalidInput(
                f"`limit` is at most {MAX_LIMIT:,}",
                [FieldError(detail=f"at most {MAX_LIMIT:,}", parameter="limit")],
            )
        unspecified = request.aggregate == telemetry_pb2.AGGREGATE_UNSPECIFIED
        try:
            q = SeriesQuery(
                metrics=list(request.metrics) or None,
                start=request.start.ToDatetime(UTC) if request.HasField("start") else None,
                end=request.end.ToDatetime(UTC) if request.HasField("end") else None,
                interval=convert.interval_of(request),
                agg=None if unspecified else convert.AGGREGATES[request.aggregate],
                limit=request.limit or None,
                # proto3 cannot tell false from unset: only true is said.
                desc=True if request.descending else None,
                cursor=request.page_token or None,
            )
            page = await self._telemetry.page(request.device_id, q)
        except InvalidInput as exc:
            raise _in_request_terms(exc) from None
        # Each point goes out once the next is made, so the last one can carry the cursor.
        held: telemetry_pb2.Point | None = None
        for metric, points in page.series.items():
            for p in points:
                if held is not None:
                    yield held
                held = telemetry_pb2.Point(
                    metric=metric, ts=convert.timestamp(p.ts_us), value=p.value
                )
        if held is not None:
            if page.next is not None:
                held.next_page_token = page.next
            yield held

    async def Latest(
        self, request: telemetry_pb2.LatestRequest, context: Context
    ) -> telemetry_pb2.LatestResponse:
        await caller(self._auth, context, Scope.READ)
        values = await self._telemetry.latest(request.device_id)
        return convert.latest(request.device_id, values)


# The core names query parameters as REST does, in backticks; RangeRequest calls some
# differently.
_RANGE_FIELDS = {
    "from": "start",
    "to": "end",
    "metric": "metrics",
    "agg": "aggregate",
    "order": "descending",
    "cursor": "page_token",
    "next": "next_page_token",
}


def _in_request_terms(exc: InvalidInput) -> InvalidInput:
    def renamed(text: str) -> str:
        for rest, grpc_name in _RANGE_FIELDS.items():
            text = text.replace(f"`{rest}`", f"`{grpc_name}`")
        return text

    errors = [
        replace(
            e,
            parameter=_RANGE_FIELDS.get(e.parameter, e.parameter) if e.parameter else None,
            detail=renamed(e.detail),
        )
        for e in exc.errors
    ]
    return type(exc)(renamed(exc.detail), errors)


class DeviceServicer(devices_pb2_grpc.DeviceServiceServicer):
    def __init__(self, *, auth: Authenticator, devices: DeviceService) -> None:
        self._auth = auth
        self._devices = devices

    async def Get(
        self, request: devices_pb2.GetDeviceRequest, context: Context
    ) -> devices_pb2.Device:
        await caller(self._auth, context, Scope.READ)
        return convert.device(await self._devices.get(request.device_id))

    async def List(
        self, request: devices_pb2.ListDevicesRequest, context: Context
    ) -> devices_pb2.ListDevicesResponse:
        await caller(self._auth, context, Scope.READ)
        if request.page_size > MAX_PAGE:
            raise InvalidInput(
                f"page_size is at most {MAX_PAGE}",
                [FieldError(detail=f"at most {MAX_PAGE}", parameter="page_size")],
            )
        size = request.page_size or DEFAULT_PAGE
        # One more than asked tells whether another page follows.
        found = await self._devices.page(
            limit=size + 1, after=request.page_token or None, attributes=dict(request.attributes)
        )
        page = found[:size]
        more = len(found) > size
        return devices_pb2.ListDevicesResponse(
            devices=[convert.device(d) for d in page],
            next_page_token=page[-1].id if more else "",
        )
