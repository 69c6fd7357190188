"""``telehub serve`` (everything in one process) and ``telehub api`` (the HTTP API only)."""

from __future__ import annotations

import gc
import logging
from typing import Annotated

import typer
import uvicorn

from telehub.api.app import create_app
from telehub.cli.common import bind, out, run, settings
from telehub.config import Settings
from telehub.errors import ConfigError
from telehub.runtime import open_hub
from telehub.storage import migrate

HostOpt = Annotated[str | None, typer.Option("--host", help="HTTP address [env TELEHUB_HTTP_HOST]")]
PortOpt = Annotated[int | None, typer.Option("--port", help="HTTP port [env TELEHUB_HTTP_PORT]")]


async def _serve_http(cfg: Settings, *, migrate_first: bool, bootstrap: bool) -> None:
    sock = bind(cfg.http_host, cfg.http_port, setting="TELEHUB_HTTP_PORT", flag="--port")
    async with open_hub(cfg, migrate=migrate_first) as hub:
        if not migrate_first and await migrate.pending(hub.store.engine):
            raise ConfigError("the database schema is not up to date: run `telehub db upgrade`")
        if bootstrap:
            secret = await hub.tokens.bootstrap()
            if secret is not None:
                out("First start: bootstrap admin token (shown only now, keep it safe):")
                out(f"  {secret}")
        # Startup objects (app, schemas, ORM) live forever: keep them out of the
        # collector's full passes, which otherwise land on the ingest hot path.
        gc.collect()
        gc.freeze()
        host, port = sock.getsockname()[:2]
        out(f"telehub API on http://{host}:{port} (docs: http://{host}:{port}/docs)")
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(cfg, hub=hub),
                log_level="info",
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=10,
            )
        )
        await server.serve(sockets=[sock])


def serve(host: HostOpt = None, port: PortOpt = None) -> None:
    """Run telehub: migrate the database, then serve the API (more transports join later)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(_serve_http(settings(http_host=host, http_port=port), migrate_first=True, bootstrap=True))


def api(host: HostOpt = None, port: PortOpt = None) -> None:
    """Run only the HTTP API (REST, docs, metrics); the schema must already be upgraded."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(_serve_http(settings(http_host=host, http_port=port), migrate_first=False, bootstrap=False))
