"""MQTT benchmark plumbing: our own Mosquitto, the C clients, the bridge process, the probe.

Every child process goes through one :class:`Children`, whose ``close`` ends what is
still running (SIGTERM, then SIGKILL), so an error or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sqlite3
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from _harness import TELEHUB, Backend, free_port, stop_child

# Timestamps start a day ago: accepted, never "future"; seq n of a device has ts BASE_MS + n.
BASE_MS = (int(time.time()) - 86_400) * 1000
METRIC = "v"
HUB_TOPIC = "telehub/v1/devices/{}/telemetry"
RAW_TOPIC = "rawbase/v1/devices/{}/telemetry"  # same shape, not matched by the bridge
RAW_FILTER = RAW_TOPIC.format("+")


def line(seq: int) -> bytes:
    """One message (one reading): ts BASE_MS + seq, value seq."""
    return b'{"ts": %d, "values": {"v": %d}}\n' % (BASE_MS + seq, seq)


def ts_us(seq: int) -> int:
    """The readings.ts the store keeps for ``line(seq)`` (microseconds)."""
    return (BASE_MS + seq) * 1000


class Children:
    """The benchmark's child processes; ``close`` stops every one still running."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(list(argv), **kwargs)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        alive = [p for p in self._procs if p.poll() is None]
        for proc in alive:
            proc.terminate()
        deadline = time.monotonic() + 10
        for proc in alive:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()


def _wait_for(path: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while needle not in path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{needle!r} not seen in {path}:\n{path.read_text()[-3000:]}")
        time.sleep(0.01)


class Broker:
    """A Mosquitto of our own on a free port (never the system one on 1883)."""

    def __init__(self, children: Children, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / "mosquitto.log"
        config = workdir / "mosquitto.conf"
        # max_queued_messages 0: no limit, so a slow subscriber loses nothing (the stock
        # 1000 drops QoS 1 messages). `user`: as root mosquitto would switch to user
        # mosquitto, who cannot write the log in our directory. `subscribe` in the log
        # tells us when a subscriber is ready.
        config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "max_queued_messages 0\n"
            "persistence false\n"
            f"user {getpass.getuser()}\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "log_type information\nlog_type subscribe\n"
        )
        self.log.write_text("")  # log_dest appends; "running" must be this run's
        self.proc = children.spawn(
            ["mosquitto", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(self.log, "running", self.proc, 10)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def wait_log(self, needle: str, timeout: float = 10) -> None:
        _wait_for(self.log, needle, self.proc, timeout)

    def client_argv(self, tool: str, client_id: str, qos: int) -> list[str]:
        return [tool, "-h", "127.0.0.1", "-p", str(self.port), "-i", client_id, "-q", str(qos)]


def publisher(
    children: Children, broker: Broker, client_id: str, topic: str, qos: int, stdin: Any
) -> subprocess.Popen[bytes]:
    """``mosquitto_pub -l``: one message per stdin line, on one connection."""
    return children.spawn(
        [*broker.client_argv("mosquitto_pub", client_id, qos), "-t", topic, "-l"],
        stdin=stdin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def check_exit(procs: Sequence[subprocess.Popen[bytes]], what: str) -> None:
    for proc in procs:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.wait() != 0:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {err}")


def subscriber(
    children: Children, broker: Broker, client_id: str, qos: int, count: int, out: IO[bytes]
) -> subprocess.Popen[bytes]:
    """``mosquitto_sub -C count`` on the raw topics, one line ``<recv time> <topic> <payload>``
    per message; returns once the broker has logged its subscription."""
    proc = children.spawn(
        [
            *broker.client_argv("mosquitto_sub", client_id, qos),
            "-t",
            RAW_FILTER,
            "-C",
            str(count),
            "-F",
            "%U %t %p",
        ],
        stdout=out,
        stderr=subprocess.DEVNULL,
    )
    broker.wait_log(f"{client_id} {qos} {RAW_FILTER}")
    return proc


class Bridge:
    """``telehub ingest`` against our broker; ready once it says it is subscribed."""

    def __init__(
        self,
        children: Children,
        backend: Backend,
        broker: Broker,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.log = backend.workdir / "bridge.log"
        # TELEHUB_MQTT_* knobs (e.g. RECEIVE_MAXIMUM) pass through, to try settings.
        mqtt_knobs = {k: v for k, v in os.environ.items() if k.startswith("TELEHUB_MQTT_")}
        env = {
            **backend.env(),
            **mqtt_knobs,
            **(extra_env or {}),
            "TELEHUB_MQTT_URL": broker.url,
            "TELEHUB_MQTT_CLIENT_ID": f"bench-bridge-{backend.name}",
        }
        with self.log.open("wb") as out:
            self.proc = children.spawn(
                [str(TELEHUB), "ingest"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        _wait_for(self.log, "telehub MQTT bridge on", self.proc, 60)

    def stop(self) -> None:
        stop_child(self.proc)

    def complaints(self) -> list[str]:
        """Warnings and errors the bridge logged."""
        text = self.log.read_text(errors="replace")
        return [ln for ln in text.splitlines() if "WARNING" in ln or "ERROR" in ln]


# ---------------------------------------------------------------- waiting and feeding


async def wait_exit(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    await asyncio.gather(*(asyncio.to_thread(p.wait) for p in procs))


async def wait_sub(sub: subprocess.Popen[bytes], out: Path, quiet: float) -> None:
    """Until the subscriber has its N messages, or got nothing new for ``quiet`` s."""
    size, changed_at = -1, time.monotonic()
    while sub.poll() is None:
        now_size = os.stat(out).st_size
        if now_size != size:
            size, changed_at = now_size, time.monotonic()
        elif time.monotonic() - changed_at > quiet:
            sub.terminate()
            sub.wait()
        await asyncio.sleep(0.01)


def received(out: Path) -> list[tuple[float, str, bytes]]:
    """mosquitto_sub's lines: (receive time, topic, payload)."""
    rows = []
    for raw in out.read_bytes().splitlines():
        stamp, topic, payload = raw.split(b" ", 2)
        rows.append((float(stamp), topic.decode(), payload))
    return rows


def feed(pipes: list[IO[bytes]], first: int, n: int, rate: float, sent: list[float]) -> None:
    """Message i goes to publisher i % P as seq first + i // P, due at start + i / rate;
    the messages due at one wake-up are written together, one write per publisher,
    and ``sent[i]`` is the wall-clock time of that write."""
    fds = [p.fileno() for p in pipes]
    start = time.perf_counter() + 0.01
    i = 0
    try:
        while i < n:
            due = max(i, min(n, int((time.perf_counter() - start) * rate) + 1))
            chunks: list[list[bytes]] = [[] for _ in fds]
            for j in range(i, due):
                chunks[j % len(fds)].append(line(first + j // len(fds)))
            now = time.time()
            sent[i:due] = [now] * (due - i)
            for fd, chunk in zip(fds, chunks, strict=True):
                if chunk:
                    os.write(fd, b"".join(chunk))
            i = due
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
    except OSError:  # a publisher died (or Ctrl-C closed the pipes): the caller reports it
        return


# ---------------------------------------------------------------- CPU


class Probe:
    """Reads ``readings`` on its own connection, as an outside observer of the bridge's commits.

    Queries name one device and metric with a ts range or value, so each is a primary-key
    range scan or lookup, cheap next to the load being measured.
    """

    def __init__(self, backend: Backend, devices: Sequence[str]) -> None:
        self.backend = backend
        self.devices = list(devices)
        self._pg: Any = None
        self._lite: sqlite3.Connection | None = None

    async def __aenter__(self) -> Probe:
        if self.backend.is_pg:
            self._pg = await self.backend.pg_connect()
        else:
            self._lite = sqlite3.connect(str(self.backend.sqlite_path), isolation_level=None)
            self._lite.execute("PRAGMA busy_timeout=10000")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._lite is not None:
            self._lite.close()

    def _sqlite(self, sql: str, *args: object) -> list[Any]:
        assert self._lite is not None
        return self._lite.execute(sql, args).fetchall()

    async def count(self, first: int, end: int) -> int:
        """Readings with seq in [first, end), all devices."""
        if self._pg is not None:
            n: int = await self._pg.fetchval(
                "SELECT count(*) FROM readings WHERE device_id = ANY($1::text[]) "
                "AND metric = $2 AND ts >= $3 AND ts < $4",
                self.devices,
                METRIC,
                ts_us(first),
                ts_us(end),
            )
            return n
        sql = (
            "SELECT count(*) FROM readings "
            "WHERE device_id = ? AND metric = ? AND ts >= ? AND ts < ?"
        )
        return sum(
            self._sqlite(sql, d, METRIC, ts_us(first), ts_us(end))[0][0] for d in self.devices
        )

    async def present(self, seq: int) -> int:
        """How many devices have reading ``seq`` stored."""
        if self._pg is not None:
            n: int = await self._pg.fetchval(
                "SELECT count(*) FROM readings WHERE device_id = ANY($1::text[]) "
                "AND metric = $2 AND ts = $3",
                self.devices,
                METRIC,
                ts_us(seq),
            )
            return n
        sql = "SELECT count(*) FROM readings WHERE device_id = ? AND metric = ? AND ts = ?"
        return sum(self._sqlite(sql, d, METRIC, ts_us(seq))[0][0] for d in self.devices)

    async def since(self, lows: Sequence[int]) -> list[tuple[int, int]]:
        """(device index, seq) of every reading with seq ≥ ``lows[device index]``."""
        index = {d: k for k, d in enumerate(self.devices)}
        if self._pg is not None:
            rows = await self._pg.fetch(
                "SELECT r.device_id, r.ts FROM unnest($1::text[], $2::bigint[]) AS w(d, lo) "
                "JOIN readings r ON r.device_id = w.d AND r.metric = $3 AND r.ts >= w.lo",
                self.devices,
                [ts_us(lo) for lo in lows],
                METRIC,
            )
            pairs = [(index[r[0]], r[1]) for r in rows]
        else:
            sql = "SELECT ts FROM readings WHERE device_id = ? AND metric = ? AND ts >= ?"
            pairs = [
                (k, ts)
                for k, d in enumerate(self.devices)
                for (ts,) in self._sqlite(sql, d, METRIC, ts_us(lows[k]))
            ]
        return [(k, ts // 1000 - BASE_MS) for k, ts in pairs]
