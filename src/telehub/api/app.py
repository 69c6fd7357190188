"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Receive, Scope, Send

from telehub import __version__
from telehub.api import log_redaction, problems, sse, ws
from telehub.api.auth_gate import BearerRequired
from telehub.api.http_protocol import METRICS_STATE
from telehub.api.ingest_route import TelemetryIngestRoute
from telehub.api.limits import BodyLimitMiddleware
from telehub.api.routes import admin, commands, devices, health, telemetry, tickets
from telehub.api.schemas import Problem
from telehub.bus.feed import EventFeed
from telehub.config import Settings, load_settings
from telehub.runtime import Hub, open_hub

_PROBLEM_RESPONSE = {
    "description": "Problem details (RFC 9457)",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


class _FrontedFastAPI(FastAPI):
    """FastAPI with an ASGI app in front of all of its layers: ``front``, which
    passes on to :meth:`behind` (FastAPI itself) what it does not answer.

    The front is a 401 for writes without a token (api/auth_gate.py), then the
    telemetry POST (api/ingest_route.py). Even as the outermost user middleware
    that POST went through the framework's own layers
    (FastAPI's telemetry and body-size wrappers, Starlette's error
    middleware, which wraps every ``send``): in front of them the hub took
    86-91 µs of CPU per single-reading POST instead of about 100, and served
    about 6 % more of them (32 clients, PostgreSQL, A/B in one run).
    """

    front: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        await self.front(scope, receive, send)

    async def behind(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, hub: Hub | None = None, migrate: bool = True) -> FastAPI:
    """Build the API. With ``hub`` given, the caller owns its lifetime (tests, ``serve``)."""
    log_redaction.install()  # every server of this app: no credential in uvicorn's lines

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            running: Hub = (
                hub
                if hub is not None
                else await stack.enter_async_context(open_hub(settings, migrate=migrate))
            )
            app.state.hub = running
            app.state.ws_clients = ws.Clients()
            app.state.event_feed = feed = EventFeed(
                bus=running.bus,
                events=running.events,
                metrics=running.metrics,
                poll_seconds=settings.events_poll_seconds,
                backlog=settings.bus_subscriber_backlog,
            )
            async with asyncio.TaskGroup() as tasks:
                follower = tasks.create_task(feed.run(), name="event-feed")
                try:
                    # uvicorn's lifespan state: how its HTTP protocol counts connections.
                    yield {METRICS_STATE: running.metrics}
                finally:
                    follower.cancel()

    # Swagger UI and ReDoc served from the package, not a CDN: a self-hosted hub
    # is often on a network that cannot reach one.
    app = FastAPIOffline(
        title="telehub",
        version=__version__,
        summary="Self-hosted IoT telemetry and device-control hub",
        lifespan=lifespan,
        responses={code: _PROBLEM_RESPONSE for code in (400, 401, 403, 404, 409, 413, 422, 503)},
    )
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(ws.LiveWebSocketRoute)  # /api/v1/ws skips the framework
    # fastapi-offline is a factory that builds a plain FastAPI: given the subclass
    # afterwards (it adds no state), the hottest request skips the whole framework.
    app.__class__ = _FrontedFastAPI
    assert isinstance(app, _FrontedFastAPI)  # for the type checker
    app.front = BearerRequired(
        TelemetryIngestRoute(app.behind, max_body_bytes=settings.max_body_bytes)
    )
    problems.install(app)
    for module in (devices, telemetry, commands, admin, health, sse, tickets):
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The app of one ``telehub api --workers N`` process: settings from the environment.

    The parent process has already checked the schema, so workers do not migrate.
    uvicorn spawns each worker as a fresh interpreter and this is the only telehub
    code it runs before serving, so it is the worker's entry point: logging is set
    up as the parent's was (telehub's own lines are dropped otherwise), and the
    interpreter is tuned once the lifespan has opened the hub.
    """
    from telehub.cli.common import configure_logging
    from telehub.process_tuning import tune_interpreter

    configure_logging()
    app = create_app(load_settings(), migrate=False)
    router = app.router
    opened = router.lifespan_context

    @contextlib.asynccontextmanager
    async def tuned_once_open(api: Any) -> AsyncIterator[Any]:
        async with opened(api) as state:
            tune_interpreter()
            yield state

    router.lifespan_context = tuned_once_open
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, plus the models only referenced from hand-written bodies."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    body_schema = dict(telemetry.TELEMETRY_BODY_SCHEMA)
    components.update(body_schema.pop("$defs", {}))
    components["TelemetryBody"] = body_schema
    components["Problem"] = Problem.model_json_schema()
    op = schema["paths"]["/api/v1/devices/{device_id}/telemetry"]["post"]
    op["requestBody"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/TelemetryBody"
    }
    app.openapi_schema = schema
    return schema
