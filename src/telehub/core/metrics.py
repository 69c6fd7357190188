"""Prometheus instruments, one registry per running hub (so tests can run many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.readings_accepted = Counter(
            "telehub_readings_accepted", "Readings committed for the first time", registry=r
        )
        self.readings_duplicate = Counter(
            "telehub_readings_duplicate", "Readings already stored (resent)", registry=r
        )
        self.rejected = Counter(
            "telehub_rejected", "Inputs refused, by reason", ["transport", "reason"], registry=r
        )
        self.backpressure = Counter(
            "telehub_ingest_backpressure",
            "Submissions refused because the queue was full",
            registry=r,
        )
        self.queue_depth = Gauge(
            "telehub_ingest_queue_readings", "Readings accepted but not yet committed", registry=r
        )
        self.batch_size = Histogram(
            "telehub_ingest_batch_readings",
            "Readings per commit",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000, 50000),
            registry=r,
        )
        self.commits = Counter(
            "telehub_ingest_commits",
            "Batches committed, by the way the store wrote them: sqlite-inline (on the event "
            "loop), sqlite-thread, postgres-one-statement, postgres-copy, postgres-resend",
            ["path"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            "telehub_ingest_commit_seconds",
            "Time to write and commit one batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.mqtt_messages = Counter(
            "telehub_mqtt_messages",
            "MQTT messages the bridge handled, by topic kind and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "telehub_mqtt_connected", "1 while the bridge is connected to its broker", registry=r
        )
        self.mqtt_subscribed = Gauge(
            "telehub_mqtt_subscribed",
            "1 while the bridge's own heartbeat comes back through its subscriptions",
            registry=r,
        )
        self.mqtt_resubscribes = Counter(
            "telehub_mqtt_resubscribes",
            "Times the bridge found its subscriptions gone (no heartbeat) and subscribed again",
            registry=r,
        )
        self.mqtt_inflight = Gauge(
            "telehub_mqtt_inflight",
            "MQTT messages received but not yet acknowledged (waiting for commit)",
            registry=r,
        )
        self.mqtt_commands_sent = Counter(
            "telehub_mqtt_commands_sent", "Commands handed to the MQTT broker", registry=r
        )
        self.commit_failures = Counter(
            "telehub_ingest_commit_failures", "Batch commits that failed", registry=r
        )
        self.bus_published = Counter(
            "telehub_bus_published", "Messages published on the live bus", registry=r
        )
        self.bus_dropped = Counter(
            "telehub_bus_dropped",
            "Readings and events dropped from slow subscribers' backlogs (or a Redis outbox)",
            registry=r,
        )
        self.bus_subscribers = Gauge(
            "telehub_bus_subscribers", "Live subscribers in this process", registry=r
        )
        self.events_logged = Counter(
            "telehub_events_logged",
            "Events written to the durable log, by type",
            ["type"],
            registry=r,
        )
        self.ws_connections = Gauge(
            "telehub_ws_connections", "WebSocket clients connected to this process", registry=r
        )
        self.ws_frames = Counter(
            "telehub_ws_frames",
            "Frames sent to WebSocket clients, by message type",
            ["type"],
            registry=r,
        )
        self.ws_dropped = Counter(
            "telehub_ws_dropped",
            "WebSocket clients the server dropped, by reason (keepalive: no pong in time)",
            ["reason"],
            registry=r,
        )
        self.sse_connections = Gauge(
            "telehub_sse_connections", "SSE clients connected to this process", registry=r
        )
        self.sse_events = Counter("telehub_sse_events", "Events sent to SSE clients", registry=r)
        self.grpc_calls = Counter(
            "telehub_grpc_calls",
            "gRPC calls finished, by method and status code",
            ["method", "code"],
            registry=r,
        )
        self.grpc_stream_messages = Counter(
            "telehub_grpc_stream_messages",
            "Messages of streaming gRPC calls, by method and direction (received, sent)",
            ["method", "direction"],
            registry=r,
        )
        self.rollup_passes = Counter(
            "telehub_rollup_passes", "Rollup build passes finished", registry=r
        )
        self.rollup_pass_seconds = Histogram(
            "telehub_rollup_pass_seconds",
            "Time one rollup build pass took",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.rollup_buckets = Counter(
            "telehub_rollup_buckets_written",
            "Rollup buckets written by build passes (all widths)",
            registry=r,
        )
        self.rollup_late_readings = Counter(
            "telehub_rollup_late_readings",
            "Readings committed below a series' built rollups and merged into them",
            registry=r,
        )
        self.grpc_in_flight = Gauge(
            "telehub_grpc_calls_in_flight", "gRPC calls running in this process", registry=r
        )
        self.sessions_revoked = Counter(
            "telehub_sessions_revoked",
            "Live sessions ended because their credential was revoked, by transport "
            "(ws, sse, grpc, mqtt)",
            ["transport"],
            registry=r,
        )
        self.http_connections = Gauge(
            "telehub_http_connections",
            "HTTP connections open in this process (WebSockets not counted)",
            registry=r,
        )
        self.http_connections_closed = Counter(
            "telehub_http_connections_closed",
            "HTTP connections the server closed on its clients, by reason: header_timeout, "
            "body_timeout, cap_evicted (waiting on its client, closed to admit a new one), "
            "cap_refused (a new one, closed at once: every other was being served)",
            ["reason"],
            registry=r,
        )
