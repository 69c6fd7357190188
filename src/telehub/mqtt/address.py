"""Where the broker is, from the settings: the embedded one or TELEHUB_MQTT_URL."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from telehub.config import Settings
from telehub.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    mqtt5: bool

    @classmethod
    def of(cls, settings: Settings) -> BrokerAddress:
        """Where the bridge connects; the embedded broker (amqtt) speaks only MQTT 3.1.1."""
        if settings.mqtt_url == "embedded":
            return cls(settings.mqtt_embedded_host, settings.mqtt_embedded_port, False, False)
        url = urlsplit(settings.mqtt_url)
        tls = url.scheme == "mqtts"
        try:
            port = url.port or (8883 if tls else 1883)
        except ValueError:
            raise ConfigError(f"TELEHUB_MQTT_URL={settings.mqtt_url!r}: bad port") from None
        if not url.hostname:
            raise ConfigError(f"TELEHUB_MQTT_URL={settings.mqtt_url!r} names no host")
        return cls(url.hostname, port, tls, True)

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def tls_context(self, settings: Settings) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ca = settings.mqtt_tls_ca_file
        return ssl.create_default_context(cafile=str(ca) if ca else None)
