"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from telehub import __version__
from telehub.api import log_redaction, problems, sse, telemetry_post, ws
from telehub.api.front import TelehubApp
from telehub.api.http_protocol import METRICS_STATE
from telehub.api.limits import BodyLimitMiddleware
from telehub.api.routes import admin, commands, devices, health, info, telemetry, tickets
from telehub.api.schemas import IngestAccepted, Problem
from telehub.bus.feed import EventFeed
from telehub.config import Settings, load_settings
from telehub.hub import Hub, open_hub

_PROBLEM_RESPONSE = {
    "description": "Problem details (RFC 9457)",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def create_app(
    settings: Settings,
    *,
    hub: Hub | None = None,
    migrate: bool = True,
    on_open: Callable[[], None] | None = None,
) -> TelehubApp:
    """Build the API. With ``hub`` given, the caller owns its lifetime (tests, ``serve``).

    ``on_open`` runs once the lifespan has opened everything, before the first request.
    """
    log_redaction.install()  # every server of this app: no credential in uvicorn's lines

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            running: Hub = (
                hub
                if hub is not None
                else await stack.enter_async_context(open_hub(settings, migrate=migrate))
            )
            # Each part of the API reads the core services it uses from here; the REST
            # routes through api/deps.py, the two ASGI paths and SSE through their ports.
            app.state.hub = running
            app.state.ingest_gate = running.ingest
            app.state.ws_clients = ws.Clients()
            app.state.live = ws.LivePorts(
                auth=running.auth,
                tickets=running.tickets,
                sessions=running.sessions,
                commands=running.commands,
                bus=running.bus,
                metrics=running.metrics,
                max_connections=running.settings.ws_max_connections,
                frame_interval_seconds=running.settings.ws_frame_interval_seconds,
            )
            app.state.event_feed = feed = EventFeed(
                bus=running.bus,
                events=running.events,
                metrics=running.metrics,
                poll_seconds=settings.events_poll_seconds,
                backlog=settings.bus_subscriber_backlog,
            )
            app.state.event_stream = sse.StreamPorts(
                events=running.events,
                feed=feed,
                sessions=running.sessions,
                metrics=running.metrics,
                keepalive_seconds=running.settings.sse_keepalive_seconds,
                retry_ms=running.settings.sse_retry_ms,
            )
            async with asyncio.TaskGroup() as tasks:
                follower = tasks.create_task(feed.run(), name="event-feed")
                if on_open is not None:
                    on_open()
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
    problems.install(app)
    for module in (devices, telemetry, commands, admin, health, info, sse, tickets):
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return TelehubApp(
        app, max_body_bytes=settings.max_body_bytes, cors_origins=settings.http_cors_origins
    )


def app_from_env() -> TelehubApp:
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
    return create_app(load_settings(), migrate=False, on_open=tune_interpreter)


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
    components["IngestAccepted"] = IngestAccepted.model_json_schema()
    path = schema["paths"].setdefault(telemetry_post.PATH, {})
    path["post"] = telemetry_post.openapi_operation(
        {code: _PROBLEM_RESPONSE for code in (401, 403, 404, 413, 422, 503)}
    )
    app.openapi_schema = schema
    return schema
