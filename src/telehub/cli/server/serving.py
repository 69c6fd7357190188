"""What ``telehub serve`` (everything in one process) and ``telehub api`` (the HTTP API
only) run; their options are in telehub/cli/commands/serve.py."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import typer
import uvicorn
from uvicorn.supervisors import Multiprocess

from telehub.api.app import create_app
from telehub.api.server import Server, tls_options, uvicorn_config
from telehub.cli.common import configure_logging, out, run, settings
from telehub.cli.exit_codes import Exit
from telehub.config import Settings
from telehub.errors import ConfigError
from telehub.grpc.server import grpc_running
from telehub.hub import Hub, open_hub
from telehub.listeners import bind
from telehub.mqtt.embedded import probe_port
from telehub.mqtt.service import mqtt_running
from telehub.process_tuning import tune_interpreter
from telehub.storage import migrate
from telehub.storage.store import SqlStore

NEW_ADMIN_TOKEN = "telehub token create --scope admin"
_WORKER_HEALTHCHECK_SECONDS = 30


async def _serve_http(
    cfg: Settings,
    *,
    migrate_first: bool,
    bootstrap: bool,
    with_mqtt: bool,
    with_grpc: bool,
    with_rollups: bool = False,
) -> None:
    sock = bind(cfg.http_host, cfg.http_port, setting="TELEHUB_HTTP_PORT", flag="--port")
    try:
        _probe_listeners(cfg, with_mqtt=with_mqtt, with_grpc=with_grpc)
    except ConfigError:
        sock.close()
        raise
    async with open_hub(cfg, migrate=migrate_first) as hub, contextlib.AsyncExitStack() as parts:
        if not migrate_first and await hub.health.schema_pending():
            raise ConfigError("the database schema is not up to date: run `telehub db upgrade`")
        if with_mqtt:
            bridge = await parts.enter_async_context(mqtt_running(hub))
            embedded = " (embedded amqtt broker, MQTT 3.1.1)" if cfg.mqtt_url == "embedded" else ""
            out(f"telehub MQTT on {bridge.address}{embedded}")
        if with_grpc:
            address = await parts.enter_async_context(grpc_running(hub))
            out(f"telehub gRPC on {address}")
        if with_rollups:
            # In one process only: `telehub api` workers would each run the same passes.
            await parts.enter_async_context(hub.rollups.running())
        url = _url(cfg, *sock.getsockname()[:2])
        out(f"telehub API on {url} (docs: {url}/docs)")
        app = create_app(cfg, hub=hub)
        config = uvicorn_config(app, cfg, lifespan="on")
        if bootstrap:
            server: Server = _Announcing(config, app=app, when_up=lambda: _announce_admin(hub))
        else:
            server = Server(config, app=app)
        # Everything this process serves is built (hub, MQTT, gRPC, app): tune now.
        tune_interpreter()
        await server.serve(sockets=[sock])


def _probe_listeners(cfg: Settings, *, with_mqtt: bool, with_grpc: bool) -> None:
    """Try every other port this command will listen on, now: a taken one is a clear
    error before anything is written (the database, a bootstrap token).

    Each probe is closed again for its server to bind; a port taken in between
    is still refused by that server, only later.
    """
    if with_grpc and cfg.grpc_port:
        bind(cfg.grpc_host, cfg.grpc_port, setting="TELEHUB_GRPC_PORT", flag="--grpc-port").close()
    if with_mqtt and cfg.mqtt_url == "embedded" and cfg.mqtt_embedded_port:
        probe_port(cfg.mqtt_embedded_host, cfg.mqtt_embedded_port)


async def _announce_admin(hub: Hub) -> None:
    """The bootstrap admin token, once the whole hub is up: a start that fails shows none.

    A token an earlier start made but never showed (it failed in between) is no use
    to anyone: then say how to make one.
    """
    secret = await hub.tokens.bootstrap()
    if secret is not None:
        out("First start: bootstrap admin token (shown only now, keep it safe):")
        out(f"  {secret}")
        out(f"(make more, or another if it is lost, with `{NEW_ADMIN_TOKEN}`)")
        await hub.tokens.bootstrap_shown()
    elif await hub.tokens.bootstrap_lost():
        out(
            "No admin token was shown yet (an earlier first start failed): "
            f"run `{NEW_ADMIN_TOKEN}` to make one"
        )


class _Announcing(Server):
    """The API server of ``telehub serve``, which has ``when_up`` say what it must once it
    serves: by then MQTT and gRPC are up too."""

    def __init__(
        self, config: uvicorn.Config, *, app: Any, when_up: Callable[[], Awaitable[None]]
    ) -> None:
        super().__init__(config, app=app)
        self._when_up = when_up

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:
            return
        try:
            await self._when_up()
        except Exception:
            await self.shutdown(sockets)
            raise


def serve(
    *, host: str | None, port: int | None, mqtt_port: int | None, grpc_port: int | None
) -> None:
    """Migrate the database, then serve the API, MQTT and gRPC, until SIGTERM or Ctrl-C."""
    configure_logging()
    cfg = settings(
        http_host=host, http_port=port, mqtt_embedded_port=mqtt_port, grpc_port=grpc_port
    )
    _check_tls(cfg)
    run(
        _serve_http(
            cfg,
            migrate_first=True,
            bootstrap=True,
            with_mqtt=True,
            with_grpc=True,
            with_rollups=True,
        )
    )


def api(*, host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the HTTP API alone, on a schema that is already current."""
    configure_logging()
    cfg = settings(http_host=host, http_port=port, http_workers=workers)
    _check_tls(cfg)
    if cfg.http_workers == 1:
        run(
            _serve_http(cfg, migrate_first=False, bootstrap=False, with_mqtt=False, with_grpc=False)
        )
        return
    # Several processes on one listening socket, each with its own hub and batch
    # writer; the database serialises their commits.
    sock = bind(cfg.http_host, cfg.http_port, setting="TELEHUB_HTTP_PORT", flag="--port")
    run(_require_current_schema(cfg))
    out(f"telehub API on {_url(cfg, *sock.getsockname()[:2])} with {cfg.http_workers} processes")
    if cfg.bus_url == "memory":
        # Each process would push only what it ingested itself; SSE still resumes
        # from the shared log, but up to TELEHUB_EVENTS_POLL_SECONDS late.
        out(
            "warning: TELEHUB_BUS_URL=memory with several processes: a WebSocket client "
            "sees only readings its own process ingested; set TELEHUB_BUS_URL=redis://…"
        )
    config = uvicorn_config(
        "telehub.api.app:app_from_env",
        cfg,
        factory=True,
        workers=cfg.http_workers,
        # uvicorn's 5 s kills a worker still importing on a busy machine (4-6 s seen
        # here), then starts another that is just as slow, in a loop.
        timeout_worker_healthcheck=_WORKER_HEALTHCHECK_SECONDS,
    )
    Multiprocess(config, sockets=[sock]).run()


def _check_tls(cfg: Settings) -> None:
    """A certificate or key that cannot be used ends the command now, in one line."""
    try:
        tls_options(cfg)
    except ConfigError as exc:
        typer.echo(f"telehub: {exc}", err=True)
        raise typer.Exit(Exit.USAGE) from None


def _url(cfg: Settings, host: str, port: int) -> str:
    return f"{cfg.http_scheme}://{host}:{port}"


async def _require_current_schema(cfg: Settings) -> None:
    store = SqlStore(cfg)
    try:
        if await migrate.pending(store.engine):
            raise ConfigError("the database schema is not up to date: run `telehub db upgrade`")
    finally:
        await store.close()
