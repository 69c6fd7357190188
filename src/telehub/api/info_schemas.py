"""``GET /api/v1/info``: where a hub's listeners are, as its clients should reach them.

A client that guesses (MQTT on 1883, gRPC on 50051) can reach some other
program that happens to listen there: a broker on 1883 accepts a device's
messages and acknowledges them, and none of them reaches the hub. So the hub
says where its own listeners are, and the simulator and the CLI ask it first.

Addresses are those this hub is configured with (every process of a
deployment shares one configuration): the embedded broker's host and port,
or ``TELEHUB_MQTT_URL``; gRPC's host and port. A listener bound to every
address (``0.0.0.0``, ``::``) is given under the host name the client used
to reach the API, which is one it can resolve.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from telehub import __version__
from telehub.config import Settings

_EVERY_ADDRESS = frozenset({"", "0.0.0.0", "::", "[::]"})


class _Info(BaseModel):
    model_config = ConfigDict(frozen=True)


class MqttInfo(_Info):
    broker: Literal["embedded", "external"] = Field(
        description="the embedded amqtt broker of `telehub serve`, or TELEHUB_MQTT_URL's"
    )
    urls: list[str] = Field(
        description="where devices connect, mqtt://host:port or mqtts://host:port"
    )
    protocol: str = Field(description="MQTT versions the broker speaks: 3.1.1, or 3.1.1 and 5")


class GrpcInfo(_Info):
    target: str = Field(description="host:port of the gRPC server (plaintext)")


class LimitsInfo(_Info):
    max_body_bytes: int = Field(description="largest HTTP body and MQTT telemetry payload")
    max_batch_readings: int = Field(description="readings in one request, message or batch")
    max_future_skew_seconds: float = Field(description="how far in the future a reading may be")
    grpc_max_message_bytes: int = Field(description="largest gRPC message")
    ws_max_message_bytes: int = Field(description="largest message a WebSocket client may send")


class HubInfo(_Info):
    version: str
    mqtt: MqttInfo
    grpc: GrpcInfo
    limits: LimitsInfo


def hub_info(settings: Settings, *, client_host: str | None) -> HubInfo:
    """What this hub tells its clients; ``client_host``: the API's host as the client named it."""
    return HubInfo(
        version=__version__,
        mqtt=_mqtt(settings, client_host),
        grpc=GrpcInfo(target=_address(settings.grpc_host, settings.grpc_port, client_host)),
        limits=LimitsInfo(
            max_body_bytes=settings.max_body_bytes,
            max_batch_readings=settings.max_batch_readings,
            max_future_skew_seconds=settings.max_future_skew_seconds,
            grpc_max_message_bytes=settings.grpc_max_message_bytes,
            ws_max_message_bytes=settings.ws_max_message_bytes,
        ),
    )


def _mqtt(settings: Settings, client_host: str | None) -> MqttInfo:
    if settings.mqtt_url == "embedded":
        where = _address(settings.mqtt_embedded_host, settings.mqtt_embedded_port, client_host)
        return MqttInfo(broker="embedded", urls=[f"mqtt://{where}"], protocol="3.1.1")
    url = urlsplit(settings.mqtt_url)
    tls = url.scheme == "mqtts"
    # Only scheme, host and port: a URL may carry a login, which is no client's business.
    port = url.port or (8883 if tls else 1883)
    where = _address(url.hostname or "", port, client_host)
    return MqttInfo(broker="external", urls=[f"{url.scheme}://{where}"], protocol="3.1.1, 5")


def _address(host: str, port: int, client_host: str | None) -> str:
    if host in _EVERY_ADDRESS and client_host:
        host = client_host
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
