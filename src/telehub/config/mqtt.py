"""The MQTT group of :class:`~telehub.config.Settings`: the embedded broker or the bridge.

``mqtt_url`` chooses which; the rest configure the embedded broker's listener,
the bridge's session on an external broker, and Mosquitto's dynamic security.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr


class MqttSettings(BaseModel):
    """``TELEHUB_MQTT_*`` and the command poll of the bridge."""

    mqtt_url: str = Field(
        "embedded",
        description="embedded (amqtt inside `telehub serve`: one host, MQTT 3.1.1), "
        "mqtt://host:port or mqtts://host:port (Mosquitto, EMQX)",
    )
    mqtt_embedded_host: str = Field(
        "127.0.0.1", description="address the embedded MQTT broker listens on"
    )
    mqtt_embedded_port: int = Field(
        1883, ge=0, le=65535, description="port of the embedded MQTT broker (`--mqtt-port`)"
    )
    mqtt_username: str | None = Field(None, description="the bridge's login on an external broker")
    mqtt_password: SecretStr | None = Field(
        None, description="the password of mqtt_username on the external broker"
    )
    mqtt_tls_ca_file: Path | None = Field(
        None, description="CA bundle for mqtts:// (default: the system's trusted CAs)"
    )
    mqtt_client_id: str = Field(
        "telehub-bridge",
        min_length=1,
        max_length=64,
        description="fixed id of the bridge's persistent session; unique per bridge process",
    )
    mqtt_shared_group: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="subscribe through $share/<group>/ so several bridges split the stream",
    )
    mqtt_receive_maximum: int = Field(
        10_000, ge=1, le=65_535, description="messages in flight to the bridge before it acks"
    )
    mqtt_session_expiry_seconds: int = Field(
        7 * 86_400, ge=60, description="how long the broker keeps the bridge's queued messages"
    )
    mqtt_keepalive_seconds: int = Field(
        30, ge=5, le=3600, description="MQTT keep-alive of the bridge's connection to the broker"
    )
    mqtt_heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="how often the bridge publishes to itself to prove its subscriptions "
        "still hold; after three missed it subscribes again",
    )
    mqtt_dynsec_username: str | None = Field(
        None,
        description="an admin login of Mosquitto's dynamic-security plugin: set it, and "
        "telehub keeps each device's broker login and topic ACL in step with its devices",
    )
    mqtt_dynsec_password: SecretStr | None = Field(
        None, description="the password of mqtt_dynsec_username"
    )
    mqtt_dynsec_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="how long a device change waits for the broker"
    )
    command_poll_seconds: float = Field(
        0.5,
        gt=0,
        le=60,
        description="how often a bridge looks for commands queued by other processes",
    )
