"""What ``telehub grpc`` runs: the gRPC server on its own, one of N behind an L7 balancer."""

from __future__ import annotations

from telehub.api.metrics_port import metrics_served
from telehub.cli.common import configure_logging, out, run, settings, stop_on_signals
from telehub.config import Settings
from telehub.errors import ConfigError
from telehub.grpc.server import grpc_running
from telehub.hub import open_hub
from telehub.process_tuning import tune_interpreter


async def _grpc(cfg: Settings) -> None:
    stop = stop_on_signals()
    async with open_hub(cfg, migrate=False) as hub:
        if await hub.health.schema_pending():
            raise ConfigError("the database schema is not up to date: run `telehub db upgrade`")
        async with (
            metrics_served(hub.metrics, host=cfg.metrics_host, port=cfg.metrics_port),
            grpc_running(hub) as address,
        ):
            tune_interpreter()
            out(f"telehub gRPC on {address} (health and reflection on)")
            if cfg.metrics_port is not None:
                out(f"metrics on http://{cfg.metrics_host}:{cfg.metrics_port}/metrics")
            await stop.wait()
            out(f"stopping: calls in flight get {cfg.grpc_grace_seconds:g} s to finish")


def grpc(*, host: str | None, port: int | None, metrics_port: int | None) -> None:
    configure_logging()
    cfg = settings(grpc_host=host, grpc_port=port, metrics_port=metrics_port)
    run(_grpc(cfg))
