"""The embedded broker's QoS 1 rounds: ``telehub serve`` with amqtt inside, devices publishing
to it directly, each PUBACK sent after the commit.

The same C publishers and messages as the Mosquitto rounds, but each logs in as its device
(client id = device id, its token as password), as the embedded broker requires. A round's
rate is readings over the time from the publishers' start until the last one exited: a
``mosquitto_pub -l`` exits once every message it sent is acknowledged, and here an
acknowledgement means committed. The probe then counts what is stored: every acknowledged
message must be there, or the round is an error.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from _harness import TELEHUB, Backend, free_port, stop_child
from _mqtt import HUB_TOPIC, Children, Probe, _wait_for, check_exit, line, wait_exit
from _mqtt_run import Measure


class EmbeddedHub:
    """``telehub serve`` on the backend's database with the embedded broker on a free port."""

    def __init__(
        self, children: Children, backend: Backend, devices: list[tuple[str, str]]
    ) -> None:
        self.port = free_port()
        self.devices = devices
        self.log = backend.workdir / "serve-embedded.log"
        env = {
            **backend.env(),
            "TELEHUB_MQTT_URL": "embedded",
            "TELEHUB_MQTT_EMBEDDED_PORT": str(self.port),
            "TELEHUB_GRPC_PORT": str(free_port()),
            # No rollup pass on the shared database in the middle of a measurement.
            "TELEHUB_ROLLUP_INTERVAL_SECONDS": "0",
        }
        with self.log.open("wb") as out:
            self.proc = children.spawn(
                [str(TELEHUB), "serve", "--port", str(free_port())],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_for(self.log, f"telehub MQTT on mqtt://127.0.0.1:{self.port}", self.proc, 60)

    def stop(self) -> None:
        stop_child(self.proc)

    def complaints(self) -> list[str]:
        text = self.log.read_text(errors="replace")
        return [ln for ln in text.splitlines() if "WARNING" in ln or "ERROR" in ln]


async def embedded_round(
    children: Children,
    hub: EmbeddedHub,
    probe: Probe,
    workdir: Path,
    first: int,
    per_device: int,
) -> Measure:
    data = b"".join(line(seq) for seq in range(first, first + per_device))
    procs = []
    t0 = time.time()
    for k, (device, token) in enumerate(hub.devices):
        path = workdir / f"emb-{k}.txt"
        path.write_bytes(data)
        with path.open("rb") as stdin:
            procs.append(
                children.spawn(
                    [
                        *("mosquitto_pub", "-h", "127.0.0.1", "-p", str(hub.port)),
                        *("-V", "mqttv311", "-i", device, "-u", device, "-P", token, "-q", "1"),
                        *("-t", HUB_TOPIC.format(device), "-l"),
                    ],
                    stdin=stdin,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
    await wait_exit(procs)
    seconds = time.time() - t0
    check_exit(procs, "mosquitto_pub (embedded broker)")
    expected = per_device * len(hub.devices)
    stored = await probe.count(first, first + per_device)
    if stored != expected:
        raise RuntimeError(
            f"the embedded broker acknowledged {expected:,} messages but {stored:,} are stored"
        )
    return Measure(expected, stored, seconds, seconds)
