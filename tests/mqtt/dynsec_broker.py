"""A Mosquitto with the dynamic-security plugin (logins required), and device helpers."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.mqtt.support import free_port, port_open

PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
ADMIN = ("admin", "admin-secret")
BRIDGE = ("telehub-bridge", "bridge-secret")
TOOLS = ("mosquitto", "mosquitto_ctrl", "mosquitto_pub", "mosquitto_sub", "stdbuf")
WAIT = 5.0


@dataclass(frozen=True)
class Broker:
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]


def run_dynsec_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Not tests.mqtt.support.Mosquitto: that one allows anonymous logins."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        require_service("Mosquitto", f"{', '.join(missing)} not installed")
    if not PLUGIN.exists():
        require_service("Mosquitto", f"the dynamic-security plugin {PLUGIN} is not installed")
    workdir = tmp_path_factory.mktemp("dynsec")
    subprocess.run(
        ["mosquitto_ctrl", "dynsec", "init", str(workdir / "dynsec.json"), *ADMIN],
        check=True,
        capture_output=True,
        timeout=10,
    )
    port = free_port()
    config = workdir / "mosquitto.conf"
    # `user`: run as root, mosquitto would switch to user mosquitto, who
    # cannot write this directory (the plugin saves dynsec.json on each change).
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous false\n"
        f"plugin {PLUGIN}\n"
        f"plugin_opt_config_file {workdir}/dynsec.json\n"
        f"user {getpass.getuser()}\n"
    )
    log = workdir / "mosquitto.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["mosquitto", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 10
    while not port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"mosquitto did not start:\n{log.read_text()}")
        time.sleep(0.02)
    yield Broker(port, workdir, process)
    if process.poll() is None:
        process.terminate()
        process.wait(10)


def client_args(
    broker: Broker, login: tuple[str, str], *, client_id: str | None = None
) -> list[str]:
    """A device's client id is its id (the broker holds it to that); so is the bridge's here."""
    return [
        *("-V", "5", "-h", "127.0.0.1", "-p", str(broker.port), "-i", client_id or login[0]),
        *("-u", login[0], "-P", login[1]),
    ]


def login(broker: Broker, credentials: tuple[str, str], *, client_id: str | None = None) -> str:
    """ "ok" when the broker accepts the login, else mosquitto_pub's complaint."""
    result = subprocess.run(
        [
            *("mosquitto_pub", *client_args(broker, credentials, client_id=client_id)),
            *("-t", "login/check", "-n"),
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return "ok" if result.returncode == 0 else result.stderr
