"""Print the port `make run` gives the embedded MQTT broker: 1883, or the next free one.

`telehub serve` itself refuses a taken port with an error naming the setting;
this only keeps `make run` working on a machine where another broker (say a
system Mosquitto) already listens on 1883.
"""

from __future__ import annotations

import socket
import sys

PREFERRED = 1883


def free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def main() -> None:
    for port in range(PREFERRED, PREFERRED + 100):
        if free(port):
            if port != PREFERRED:
                print(
                    f"make run: 127.0.0.1:{PREFERRED} is taken (another MQTT broker?); "
                    f"the embedded broker uses {port} (set TELEHUB_MQTT_EMBEDDED_PORT to choose)",
                    file=sys.stderr,
                )
            print(port)
            return
    sys.exit(f"make run: no free port in {PREFERRED}-{PREFERRED + 99}")


if __name__ == "__main__":
    main()
