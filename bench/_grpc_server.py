"""``telehub grpc --metrics-port``, started the way bench/_harness.py starts a server.

    python bench/_grpc_server.py --port HTTP_PORT    (gRPC on TELEHUB_GRPC_PORT)

The harness appends ``--port`` for the HTTP port it polls and scrapes; for the
gRPC server that is the Prometheus port (which answers any path, so its
``/healthz`` poll says "up" once the hub is open), not the gRPC port.
"""

from __future__ import annotations

import argparse

from telehub.cli.main import app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True, help="the metrics HTTP port")
    app(["grpc", "--metrics-port", str(parser.parse_args().port)])


if __name__ == "__main__":
    main()
