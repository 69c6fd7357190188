"""Dependency aliases: each route's core service, and the authenticated caller.

The one place the REST routes meet the hub (app.state.hub): every route
takes the service it calls, so none can reach the rest.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPBearer

from telehub.config import Settings
from telehub.core.auth import TokenService, bearer_secret, require
from telehub.core.commands import CommandService
from telehub.core.devices import DeviceService
from telehub.core.health import ComponentStates, DatabaseHealth
from telehub.core.metrics import Metrics
from telehub.core.rejected import RejectedLog
from telehub.core.telemetry import TelemetryService
from telehub.core.tickets import LiveTickets
from telehub.domain.devices import Principal, Scope
from telehub.hub import Hub


class _Bearer(HTTPBearer):
    """FastAPI's HTTPBearer for the OpenAPI security scheme; the header read as every
    transport reads it (core.auth.bearer_secret)."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return bearer_secret(request.headers.get("authorization"))


_bearer = _Bearer(
    auto_error=False,
    description="An API token (tha_…) or, for telemetry ingest, a device token (thd_…)",
)


async def _hub(request: Request) -> Hub:
    # async: a sync dependency would send every request through the threadpool.
    hub: Hub = request.app.state.hub
    return hub


_HubDep = Annotated[Hub, Depends(_hub)]


async def _settings(hub: _HubDep) -> Settings:
    return hub.settings


async def _devices(hub: _HubDep) -> DeviceService:
    return hub.devices


async def _commands(hub: _HubDep) -> CommandService:
    return hub.commands


async def _telemetry(hub: _HubDep) -> TelemetryService:
    return hub.telemetry


async def _tickets(hub: _HubDep) -> LiveTickets:
    return hub.tickets


async def _tokens(hub: _HubDep) -> TokenService:
    return hub.tokens


async def _rejected(hub: _HubDep) -> RejectedLog:
    return hub.rejected


async def _metrics(hub: _HubDep) -> Metrics:
    return hub.metrics


async def _database(hub: _HubDep) -> DatabaseHealth:
    return hub.health


async def _components(hub: _HubDep) -> ComponentStates:
    return hub.components


SettingsDep = Annotated[Settings, Depends(_settings)]
DevicesDep = Annotated[DeviceService, Depends(_devices)]
CommandsDep = Annotated[CommandService, Depends(_commands)]
TelemetryDep = Annotated[TelemetryService, Depends(_telemetry)]
TicketsDep = Annotated[LiveTickets, Depends(_tickets)]
TokensDep = Annotated[TokenService, Depends(_tokens)]
RejectedDep = Annotated[RejectedLog, Depends(_rejected)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
DatabaseDep = Annotated[DatabaseHealth, Depends(_database)]
ComponentsDep = Annotated[ComponentStates, Depends(_components)]


# The bearer secret as given, unchecked.
BearerDep = Annotated[str | None, Depends(_bearer)]


async def _principal(hub: _HubDep, secret: BearerDep) -> Principal:
    return await hub.auth.authenticate(secret)


PrincipalDep = Annotated[Principal, Depends(_principal)]


def _scoped(scope: Scope) -> object:
    async def check(principal: PrincipalDep) -> Principal:
        require(principal, scope)
        return principal

    return Depends(check)


ReadScope = Annotated[Principal, _scoped(Scope.READ)]
WriteScope = Annotated[Principal, _scoped(Scope.WRITE)]
AdminScope = Annotated[Principal, _scoped(Scope.ADMIN)]


async def _live_principal(
    hub: _HubDep,
    secret: BearerDep,
    ticket: Annotated[
        str | None,
        Query(
            description="a ticket from POST /api/v1/live/tickets, for clients that cannot "
            "set headers (EventSource): single-use, short-lived"
        ),
    ] = None,
    token: Annotated[
        str | None,
        Query(
            description="the token itself (still accepted, discouraged: a URL reaches "
            "proxies' logs and browser history; use ticket)"
        ),
    ] = None,
) -> Principal:
    """A live feed's caller: the Authorization header, else ``?ticket=``, else ``?token=``."""
    if secret is None and ticket is not None:
        principal = await hub.tickets.redeem(ticket)
    else:
        principal = await hub.auth.authenticate(secret or token)
    require(principal, Scope.READ)
    return principal


LiveReadScope = Annotated[Principal, Depends(_live_principal)]
