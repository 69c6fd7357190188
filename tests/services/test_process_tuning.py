"""Interpreter tuning belongs to the process entry points, never to ``open_hub``.

Each long-running command is started as a real process, and its stderr must
show the line telehub.process_tuning logs with what the interpreter reports
after tuning; a library user of ``open_hub`` (every test here) keeps the
collector and switch interval it had.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from telehub.config import Settings
from telehub.hub import open_hub
from tests.mqtt.support import Mosquitto
from tests.services.server_process import ROOT, TELEHUB, free_port, serve_env, upgrade

TUNED = re.compile(
    r"^INFO telehub\.process_tuning: interpreter tuned: gc threshold \(50000, 20, 100\), "
    r"(\d+) objects frozen, switch interval 0\.5 ms$"
)
# `api --workers 2` starts two interpreters that import everything on 2 shared cores.
WAIT_SECONDS = 90.0


async def test_open_hub_leaves_the_interpreter_as_it_found_it(
    make_settings: Callable[..., Settings],
) -> None:
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    # Values of our own, so a hub that set the defaults would be caught as well.
    gc.set_threshold(701, 11, 12)
    sys.setswitchinterval(0.004)
    try:
        frozen = gc.get_freeze_count()
        async with open_hub(make_settings()) as hub:
            await hub.devices.create(device_id="d1", name=None, attributes={})
            inside = (gc.get_threshold(), gc.get_freeze_count(), sys.getswitchinterval())
        after = (gc.get_threshold(), gc.get_freeze_count(), sys.getswitchinterval())
        assert inside == after == ((701, 11, 12), frozen, 0.004)
    finally:
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)


@contextlib.contextmanager
def started(env: dict[str, str], tmp_path: Path, *args: str) -> Iterator[Callable[[int], str]]:
    """``telehub <args>`` running; yields ``tuned(n)``: its stderr once ``n`` lines of it
    say the interpreter was tuned (a failure shows stdout and stderr)."""
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [TELEHUB, *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
            # Its own process group: `api --workers N` forks workers to stop as well.
            start_new_session=True,
        )

    def tuned(count: int) -> str:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            text = stderr.read_text(errors="replace")
            if sum(1 for line in text.splitlines() if "interpreter tuned" in line) >= count:
                return text
            if process.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(
            f"telehub {' '.join(args)}: not {count} tuning line(s) "
            f"(exit {process.poll()})\nstdout:\n{stdout.read_text(errors='replace')}\n"
            f"stderr:\n{stderr.read_text(errors='replace')}"
        )

    try:
        yield tuned
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def tuning_lines(stderr: str) -> list[re.Match[str]]:
    """Every tuning line, each checked whole: a line that says other values fails here."""
    lines = [line for line in stderr.splitlines() if "interpreter tuned" in line]
    matches = [TUNED.match(line) for line in lines]
    assert all(matches), lines
    # Freezing after start-up moves what it built out of the collector's way.
    assert all(int(match[1]) > 10_000 for match in matches if match), lines
    return [match for match in matches if match]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return serve_env(tmp_path)


@pytest.fixture
def upgraded(env: dict[str, str]) -> dict[str, str]:
    """The environment of a command that needs the schema upgraded beforehand (upgraded
    here, not by a ``telehub db upgrade`` process: only the started command is tested)."""
    upgrade(env)
    return env


def test_serve_tunes_its_interpreter(env: dict[str, str], tmp_path: Path) -> None:
    with started(
        env, tmp_path, "serve", "--host", "127.0.0.1", "--port", str(free_port())
    ) as tuned:
        assert len(tuning_lines(tuned(1))) == 1


def test_api_tunes_its_interpreter(upgraded: dict[str, str], tmp_path: Path) -> None:
    with started(
        upgraded, tmp_path, "api", "--host", "127.0.0.1", "--port", str(free_port())
    ) as tuned:
        assert len(tuning_lines(tuned(1))) == 1


def test_api_tunes_every_worker_process(upgraded: dict[str, str], tmp_path: Path) -> None:
    """Each worker is a fresh interpreter (uvicorn spawns them): each is tuned, once."""
    port = str(free_port())
    with started(upgraded, tmp_path, "api", "--port", port, "--workers", "2") as tuned:
        assert len(tuning_lines(tuned(2))) == 2
        time.sleep(1)  # a third line, from the parent or a worker tuned twice, would show now
        assert len(tuning_lines(tuned(2))) == 2


def test_grpc_tunes_its_interpreter(upgraded: dict[str, str], tmp_path: Path) -> None:
    with started(upgraded, tmp_path, "grpc") as tuned:
        assert len(tuning_lines(tuned(1))) == 1


@pytest.mark.services
def test_ingest_tunes_its_interpreter(upgraded: dict[str, str], tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    try:
        env = upgraded | {"TELEHUB_MQTT_URL": broker.url}
        with started(env, tmp_path, "ingest", "--client-id", "tuning-test") as tuned:
            assert len(tuning_lines(tuned(1))) == 1
    finally:
        broker.stop()
