"""The gRPC group of :class:`~telehub.config.Settings`: the server of ``telehub grpc``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class GrpcSettings(BaseModel):
    """``TELEHUB_GRPC_*``: address, message size, shutdown grace, stream window, health."""

    grpc_host: str = Field(
        "127.0.0.1", description="address the gRPC server listens on (`--host` of `telehub grpc`)"
    )
    grpc_port: int = Field(
        50051, ge=0, le=65535, description="port of the gRPC server (`--grpc-port`)"
    )
    grpc_max_message_bytes: int = Field(
        8 * 1024 * 1024, ge=64 * 1024, description="largest gRPC message received or sent"
    )
    grpc_grace_seconds: float = Field(
        10.0, ge=0, description="on shutdown, in-flight gRPC calls get this long to finish"
    )
    grpc_stream_window_readings: int = Field(
        20_000,
        ge=1,
        description="readings of one Publish stream in flight to the writer (at least a batch)",
    )
    grpc_health_interval_seconds: float = Field(
        5.0, gt=0, description="how often the gRPC health service checks the database"
    )
