"""What ``telehub ingest`` runs: the MQTT bridge on its own, one of N sharing a subscription."""

from __future__ import annotations

from telehub.api.metrics_port import metrics_served
from telehub.cli.common import configure_logging, out, run, settings, stop_on_signals
from telehub.config import Settings
from telehub.errors import ConfigError
from telehub.hub import open_hub
from telehub.mqtt.service import bridge_for
from telehub.process_tuning import tune_interpreter


async def _ingest(cfg: Settings) -> None:
    if cfg.mqtt_url == "embedded":
        raise ConfigError(
            "telehub ingest bridges an external broker: set TELEHUB_MQTT_URL=mqtt://host:port "
            "(the embedded broker runs inside telehub serve, with its own bridge)"
        )
    stop = stop_on_signals()
    async with open_hub(cfg, migrate=False) as hub:
        if await hub.health.schema_pending():
            raise ConfigError("the database schema is not up to date: run `telehub db upgrade`")
        async with metrics_served(hub.metrics, host=cfg.metrics_host, port=cfg.metrics_port):
            bridge = bridge_for(hub)
            await bridge.start()
            tune_interpreter()
            group = f", shared group {cfg.mqtt_shared_group}" if cfg.mqtt_shared_group else ""
            out(f"telehub MQTT bridge on {bridge.address} as {cfg.mqtt_client_id}{group}")
            try:
                await stop.wait()
            finally:
                await bridge.stop()


def ingest(*, metrics_port: int | None, client_id: str | None, shared_group: str | None) -> None:
    configure_logging()
    cfg = settings(
        mqtt_client_id=client_id, mqtt_shared_group=shared_group, metrics_port=metrics_port
    )
    run(_ingest(cfg))
