"""The ``telehub`` command: a thin typer app; each command lives in commands/.

Each command's module is imported only when that command runs (telehub.cli.lazy):
``telehub --help`` imports none of them, ``telehub devices list`` only the client's.
The line each shows in ``telehub --help`` is declared here; a test keeps it equal
to the command's own help.
"""

from __future__ import annotations

import typer

from telehub.cli.lazy import Lazy, lazy_group

_C = "telehub.cli.commands."
RUN = "Running the hub (on its database)"
TALK = "Talking to a hub (over its API: --url, --token, --json)"

COMMANDS = (
    Lazy(
        "serve",
        _C + "serve:serve",
        "Run telehub: migrate the database, then serve the API, MQTT and gRPC.",
        RUN,
    ),
    Lazy(
        "api",
        _C + "serve:api",
        "Run only the HTTP API (REST, docs, metrics); the schema must already be upgraded.",
        RUN,
    ),
    Lazy(
        "ingest",
        _C + "ingest:ingest",
        "Run the MQTT bridge: store device messages from an external broker (no HTTP).",
        RUN,
    ),
    Lazy(
        "grpc",
        _C + "grpc_server:grpc",
        "Run only the gRPC server (ingest, query, live, commands, devices).",
        RUN,
    ),
    Lazy("db", _C + "db:app", "Database schema and rollups.", RUN),
    Lazy("token", _C + "tokens:app", "API tokens.", RUN),
    Lazy("mqtt", _C + "mqtt:app", "MQTT broker set-up.", RUN),
    Lazy(
        "login",
        _C + "login:login",
        "Save the server and token (and --ca-file) the API commands use when no flag or env "
        "gives them.",
        TALK,
    ),
    Lazy("devices", _C + "remote_devices:app", "Devices, through the API.", TALK),
    Lazy(
        "send",
        _C + "remote_telemetry:send",
        "Send one set of values for a device (needs a write token or the device's own).",
        TALK,
    ),
    Lazy(
        "query",
        _C + "remote_telemetry:query",
        "Readings of a device over a time range, raw or in buckets.",
        TALK,
    ),
    Lazy(
        "latest",
        _C + "remote_telemetry:latest",
        "The newest value of each of a device's metrics, and its state.",
        TALK,
    ),
    Lazy("command", _C + "remote_commands:app", "Commands to devices, through the API.", TALK),
    Lazy(
        "rejected",
        _C + "remote_rejected:rejected",
        "Refused inputs (bad payloads, unknown devices), newest first.",
        TALK,
    ),
    Lazy(
        "tail",
        _C + "live:tail",
        "Print readings (and presence changes) as they are committed, until Ctrl-C.",
        TALK,
    ),
    Lazy(
        "events",
        _C + "live:events",
        "Follow the event feed (SSE), resuming by itself after a dropped connection.",
        TALK,
    ),
    Lazy(
        "simulate",
        "telehub.sim.cli:simulate_command",
        "Simulate devices sending temperature, humidity, power and vibration readings.",
        TALK,
    ),
)

app = typer.Typer(
    cls=lazy_group(*COMMANDS),
    help="telehub: self-hosted IoT telemetry and device-control hub.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _telehub() -> None:
    # A callback makes typer build a group even though every command is lazy.
    pass


def main() -> None:
    app()
