"""The live-push group of :class:`~telehub.config.Settings`: the bus, WebSocket and SSE.

They bound what live clients may cost: backlogs, frames, pings and connections.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class LiveSettings(BaseModel):
    """The bus, the event log, WebSocket and SSE clients, and live tickets."""

    bus_url: str = Field(
        "memory",
        description="memory (one process) or redis://host:port/db (several processes)",
    )
    bus_channel_prefix: str = Field(
        "telehub",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Redis channel names start with this (one prefix per deployment)",
    )
    bus_subscriber_backlog: int = Field(
        50_000,
        ge=100,
        description="readings (or events) waiting for one live subscriber before its "
        "oldest are dropped and it is sent a gap; messages are shared between subscribers, "
        "so this bounds delay more than memory",
    )
    event_log_keep: int = Field(
        100_000, ge=100, description="events kept for SSE clients resuming with Last-Event-ID"
    )
    events_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="how often the event feed checks the log for missed events"
    )
    ws_frame_interval_seconds: float = Field(
        0.025,
        ge=0,
        le=1,
        description="readings for one WebSocket client are coalesced into one frame per interval",
    )
    ws_max_connections: int = Field(
        20_000, ge=1, description="WebSocket clients per process; more are closed with 1013"
    )
    ws_ping_interval_seconds: float = Field(
        20.0, gt=0, description="the server pings each WebSocket client this often"
    )
    ws_ping_timeout_seconds: float = Field(
        20.0, gt=0, description="a client that does not answer a ping within this is dropped"
    )
    ws_compression: bool = Field(
        False, description="permessage-deflate: less bandwidth, about 3x the memory per client"
    )
    ws_max_message_bytes: int = Field(
        64 * 1024, ge=1024, description="largest message a WebSocket client may send"
    )
    sse_keepalive_seconds: float = Field(
        15.0, gt=0, le=300, description="a comment line is sent when nothing else was"
    )
    sse_retry_ms: int = Field(3000, ge=100, description="reconnect delay advised to SSE clients")
    live_ticket_seconds: int = Field(
        30,
        ge=1,
        le=600,
        description="a ticket from POST /api/v1/live/tickets opens one WebSocket or SSE "
        "stream within this many seconds",
    )
