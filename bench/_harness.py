"""Benchmark plumbing: backends, the server subprocesses, /metrics scraping."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg

from telehub.config import Settings, load_settings
from telehub.domain.devices import Scope
from telehub.hub import open_hub
from telehub.process_tuning import tune_interpreter

PG_URL = os.environ.get(
    "TELEHUB_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BENCH_DIR = Path(__file__).resolve().parent
TELEHUB = Path(sys.executable).parent / "telehub"


def ingest_knobs() -> dict[str, str]:
    """TELEHUB_INGEST_* and TELEHUB_HTTP_WORKERS pass through to the server, to try settings.

    With several workers, /metrics (and so the commit figures) covers one process only.
    """
    return {
        k: v
        for k, v in os.environ.items()
        if k.startswith("TELEHUB_INGEST_") or k == "TELEHUB_HTTP_WORKERS"
    }


@dataclass
class Backend:
    """One database for one run: a temp dir (SQLite) or a fresh schema (PostgreSQL)."""

    name: str
    workdir: Path
    url: str
    schema: str | None = None
    raw_schema: str | None = None

    @property
    def is_pg(self) -> bool:
        return self.name == "postgres"

    @property
    def sqlite_path(self) -> Path:
        return self.workdir / "telehub.db"

    @property
    def dsn(self) -> str:
        """The asyncpg DSN (no SQLAlchemy driver suffix)."""
        return self.url.replace("postgresql+asyncpg://", "postgresql://", 1)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELEHUB_")}
        env.update(ingest_knobs())
        env["TELEHUB_DATABASE_URL"] = self.url
        if self.schema:
            env["TELEHUB_DATABASE_SCHEMA"] = self.schema
        return env

    def settings(self) -> Settings:
        return load_settings(database_url=self.url, database_schema=self.schema)

    async def pg_connect(self, schema: str | None = None) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.dsn, server_settings={"search_path": schema or self.schema or "public"}
        )


def make_backend(name: str) -> Backend:
    workdir = Path(tempfile.mkdtemp(prefix=f"telehub-bench-{name}-"))
    if name == "sqlite":
        return Backend(name, workdir, f"sqlite+aiosqlite:///{workdir / 'telehub.db'}")
    tag = secrets.token_hex(4)
    return Backend(name, workdir, PG_URL, schema=f"bench_{tag}", raw_schema=f"bench_{tag}_raw")


async def drop_backend(backend: Backend) -> None:
    if backend.is_pg:
        conn = await backend.pg_connect("public")
        try:
            for schema in (backend.schema, backend.raw_schema):
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
    shutil.rmtree(backend.workdir, ignore_errors=True)


@dataclass
class Fixture:
    """What the load needs: an admin token, devices with their tokens, the query device."""

    admin: str
    devices: list[tuple[str, str]] = field(default_factory=list)
    query_device: str = "bench-query"


async def setup_hub(backend: Backend, n_devices: int) -> Fixture:
    """Migrate (the real schema) and register tokens and devices, before the server starts.

    The driver process is tuned as telehub's processes are (it was, by open_hub, before
    tuning moved to the entry points): its load generator runs as it always did.
    """
    async with open_hub(backend.settings()) as hub:
        tune_interpreter()
        _, admin = await hub.tokens.create(name="bench", scope=Scope.ADMIN)
        fixture = Fixture(admin=admin)
        for i in range(n_devices):
            device, secret = await hub.devices.create(
                device_id=f"bench-{i:03d}", name=None, attributes={}
            )
            fixture.devices.append((device.id, secret))
        await hub.devices.create(device_id=fixture.query_device, name=None, attributes={})
    return fixture


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """A server subprocess on a free port, up once /healthz answers.

    With ``ca`` (``env`` then configures HTTPS) it is reached over https://, trusting that CA.
    """

    def __init__(
        self,
        label: str,
        argv: list[str],
        env: dict[str, str],
        log_dir: Path,
        *,
        ca: Path | None = None,
    ) -> None:
        self.label = label
        self.ca = ca
        self.port = free_port()
        self.log_path = log_dir / f"{label}-{self.port}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        env = {**env, "TELEHUB_HTTP_PORT": str(self.port)}
        self.proc = subprocess.Popen(
            [*argv, "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"

    @classmethod
    def telehub(
        cls, backend: Backend, *, extra_env: dict[str, str] | None = None, ca: Path | None = None
    ) -> Server:
        label = f"telehub-{backend.name}" + ("-https" if ca else "")
        env = backend.env() | (extra_env or {})
        return cls(label, [str(TELEHUB), "api"], env, backend.workdir, ca=ca)

    @classmethod
    def bare(cls, backend: Backend) -> Server:
        argv = [sys.executable, str(BENCH_DIR / "_bare_app.py")]
        return cls(f"bare-{backend.name}", argv, backend.env(), backend.workdir)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited early:\n{self.log_path.read_text()}")
            try:
                with self.urlopen(self.base + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.label} not ready in {timeout}s:\n{self.log_path.read_text()}")

    def urlopen(self, request: str | urllib.request.Request, *, timeout: float) -> Any:
        """urllib's, trusting the server's CA when it serves HTTPS."""
        context = ssl.create_default_context(cafile=self.ca) if self.ca else None
        return urllib.request.urlopen(request, timeout=timeout, context=context)

    def stop(self) -> None:
        stop_child(self.proc)
        self._log.close()


@dataclass(frozen=True)
class CommitStats:
    """The writer's histograms, as totals; subtract two scrapes for one phase."""

    commits: float = 0.0
    readings: float = 0.0
    seconds: float = 0.0
    buckets: tuple[tuple[str, float], ...] = ()

    def __sub__(self, other: CommitStats) -> CommitStats:
        old = dict(other.buckets)
        return CommitStats(
            self.commits - other.commits,
            self.readings - other.readings,
            self.seconds - other.seconds,
            tuple((le, n - old.get(le, 0.0)) for le, n in self.buckets),
        )

    @property
    def mean_batch(self) -> float:
        return self.readings / self.commits if self.commits else 0.0

    @property
    def mean_commit_ms(self) -> float:
        return 1000 * self.seconds / self.commits if self.commits else 0.0

    def histogram(self) -> str:
        """Commits per batch-size bucket (non-cumulative), e.g. ``≤500:12 ≤1000:40``."""
        parts, below = [], 0.0
        for le, cumulative in self.buckets:
            if cumulative - below >= 1:
                parts.append(f"≤{le}:{int(cumulative - below)}")
            below = cumulative
        return " ".join(parts)


_SAMPLE = re.compile(r'^(telehub_ingest_\w+?)(?:\{le="([^"]+)"\})? ([0-9.e+-]+)$', re.M)


def scrape(server: Server, admin: str) -> CommitStats:
    req = urllib.request.Request(
        server.base + "/metrics", headers={"Authorization": f"Bearer {admin}"}
    )
    with server.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    values: dict[str, float] = {}
    buckets: list[tuple[str, float]] = []
    for name, le, value in _SAMPLE.findall(text):
        if name == "telehub_ingest_batch_readings_bucket":
            buckets.append((le.removesuffix(".0"), float(value)))
        else:
            values[name] = float(value)
    return CommitStats(
        commits=values.get("telehub_ingest_batch_readings_count", 0.0),
        readings=values.get("telehub_ingest_batch_readings_sum", 0.0),
        seconds=values.get("telehub_ingest_commit_seconds_sum", 0.0),
        buckets=tuple(buckets),
    )


def run_async(coro: Any) -> Any:
    """The load generator and the raw baselines run on uvloop, the fastest client loop."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def stop_child(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C a telehub process (it drains and flushes); kill it if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
