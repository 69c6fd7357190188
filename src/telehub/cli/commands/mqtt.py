"""``telehub mqtt``: set-up steps on an external broker."""

from __future__ import annotations

import typer

from telehub.cli.common import out, run, settings
from telehub.config import Settings
from telehub.errors import ConfigError
from telehub.mqtt.address import BrokerAddress
from telehub.mqtt.dynsec import DynsecProvisioner

app = typer.Typer(help="MQTT broker set-up.", no_args_is_help=True)


async def _bridge_login(cfg: Settings) -> str:
    if not cfg.mqtt_dynsec_username:
        raise ConfigError("set TELEHUB_MQTT_DYNSEC_USERNAME/PASSWORD (a dynamic-security admin)")
    if not cfg.mqtt_username or cfg.mqtt_password is None:
        raise ConfigError("set TELEHUB_MQTT_USERNAME/PASSWORD: the login the bridges will use")
    address = BrokerAddress.of(cfg)
    admin_secret = cfg.mqtt_dynsec_password
    async with DynsecProvisioner(
        address.host,
        address.port,
        cfg.mqtt_dynsec_username,
        admin_secret.get_secret_value() if admin_secret else "",
        tls=address.tls_context(cfg),
        timeout=cfg.mqtt_dynsec_timeout_seconds,
    ) as provisioner:
        await provisioner.ensure_roles()
        await provisioner.ensure_bridge(cfg.mqtt_username, cfg.mqtt_password.get_secret_value())
    return f"bridge login {cfg.mqtt_username!r} ready on {address}"


@app.command("bridge-login")
def bridge_login() -> None:
    """Create (or reset) the bridges' login and role in Mosquitto's dynamic security.

    Run once per deployment; running bridges with that login reconnect.
    """
    out(run(_bridge_login(settings())))
