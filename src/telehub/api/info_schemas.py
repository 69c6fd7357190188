"""The answer of ``GET /api/v1/info``: where a hub's listeners are, as its clients should
reach them (models only: the SDKs import them; api/routes/info.py fills them in).

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

from pydantic import BaseModel, ConfigDict, Field


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
