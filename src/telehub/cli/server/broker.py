"""What ``telehub mqtt bridge-login`` runs: set-up steps on an external broker."""

from __future__ import annotations

from telehub.cli.common import out, run, settings
from telehub.config import Settings
from telehub.errors import ConfigError
from telehub.mqtt.dynsec import provisioner_for


async def _bridge_login(cfg: Settings) -> str:
    if not cfg.mqtt_username or cfg.mqtt_password is None:
        raise ConfigError("set TELEHUB_MQTT_USERNAME/PASSWORD: the login the bridges will use")
    async with provisioner_for(cfg) as provisioner:
        await provisioner.ensure_roles()
        await provisioner.ensure_bridge(cfg.mqtt_username, cfg.mqtt_password.get_secret_value())
    return f"bridge login {cfg.mqtt_username!r} ready on {provisioner.address}"


def bridge_login() -> None:
    out(run(_bridge_login(settings())))
