"""``telehub simulate``: simulated devices sending realistic telemetry at a steady rate.

Where the MQTT broker and the gRPC server are is asked of the hub (GET
/api/v1/info) unless a flag says; once the run is over, what was acknowledged
is read back from the hub, and a run that did not store everything it sent
ends with exit code 1 and a line saying which devices lack how many readings.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from telehub.cli.common import run, stop_on_signals
from telehub.cli.remote import CaFileOpt, Target, describe, target
from telehub.client.errors import ClientError
from telehub.sim.stats import Stats

if TYPE_CHECKING:
    from telehub.sim.runner import SimConfig, TransportName

_REFRESH_S = 0.5


def simulate_command(
    devices: Annotated[int, typer.Option("--devices", help="simulated devices")] = 10,
    rate: Annotated[float, typer.Option("--rate", help="messages per second, in total")] = 10.0,
    transport: Annotated[str, typer.Option("--transport", help="http, grpc or mqtt")] = "http",
    duration: Annotated[float, typer.Option("--duration", help="seconds to run")] = 60.0,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", envvar="TELEHUB_URL", help="the API (provisioning, HTTP); default: the login"
        ),
    ] = None,
    grpc_target: Annotated[
        str | None,
        typer.Option(
            "--grpc-target",
            envvar="TELEHUB_GRPC_TARGET",
            help="host:port; default: where the hub says (GET /api/v1/info)",
            show_default=False,
        ),
    ] = None,
    mqtt_url: Annotated[
        str | None,
        typer.Option(
            "--mqtt-url",
            help="mqtt://host:port of the broker; default: the hub's (GET /api/v1/info)",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="TELEHUB_TOKEN",
            help="admin token, to provision the devices (each sends with its own); default: login",
        ),
    ] = None,
    ca_file: CaFileOpt = None,
    prefix: Annotated[str, typer.Option("--prefix", help="device ids are {prefix}-{n}")] = "sim",
    fail_share: Annotated[
        float, typer.Option("--fail-share", help="share of MQTT commands answered error")
    ] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="makes the signals repeatable")] = 0,
    window: Annotated[int, typer.Option("--window", help="messages in flight, at most")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON summary at the end")] = False,
) -> None:
    """Simulate devices sending temperature, humidity, power and vibration readings."""
    if transport not in ("http", "grpc", "mqtt"):
        raise typer.BadParameter("must be http, grpc or mqtt", param_hint="--transport")
    name: TransportName = (
        "http" if transport == "http" else "grpc" if transport == "grpc" else "mqtt"
    )
    # The server and token as every API command finds them: flags, env, telehub login.
    where = target(url, token, ca_file)
    # Here, not at the top: the transports load gRPC and MQTT clients, which
    # `telehub --help` and `telehub simulate --help` need not pay for.
    from telehub.sim.runner import SimConfig

    try:
        config = SimConfig(
            devices=devices,
            rate=rate,
            duration=duration,
            transport=name,
            token=where.token or "",
            url=where.url,
            verify=where.verify,
            grpc_target=grpc_target,
            mqtt_url=mqtt_url,
            prefix=prefix,
            fail_share=fail_share,
            seed=seed,
            window=window,
        )
    except ValueError as exc:
        typer.echo(f"telehub: {exc}", err=True)
        raise typer.Exit(2) from None
    summary, problem = run(_main(config, where, as_json=as_json))
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    if problem is not None:
        typer.echo(f"telehub: simulation incomplete: {problem}", err=True)
        raise typer.Exit(1)


async def _main(
    config: SimConfig, where: Target, *, as_json: bool
) -> tuple[dict[str, Any], str | None]:
    from telehub.client.grpc_calls import GrpcError
    from telehub.sim.runner import simulate
    from telehub.sim.verify import check_run

    stats = config.stats()
    stop = stop_on_signals()
    problem: str | None = None

    async def work() -> None:
        nonlocal problem
        await simulate(config, stats=stats, stop=stop)
        problem = await check_run(config, stats)

    try:
        if as_json:
            await work()
        else:
            await _with_panel(work(), stats)
    except (ClientError, GrpcError, OSError, ExceptionGroup) as exc:
        cause = _cause(exc)
        if cause is None:
            raise
        # The API's errors told as every API command tells them (say, which flag to give).
        told = describe(cause, where) if isinstance(cause, ClientError) else str(cause)
        typer.echo(f"telehub: simulation failed: {told}", err=True)
        raise typer.Exit(1) from None
    return stats.summary(), problem


def _cause(exc: BaseException) -> BaseException | None:
    """The error to report: the first expected one, inside task groups too."""
    from telehub.client.grpc_calls import GrpcError

    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _cause(inner)) is not None:
                return found
        return None
    return exc if isinstance(exc, ClientError | GrpcError | OSError) else None


async def _with_panel(run_and_check: Coroutine[Any, Any, None], stats: Stats) -> None:
    console = Console(stderr=False)
    with Live(render(stats.summary()), console=console, auto_refresh=False) as live:
        async with asyncio.TaskGroup() as group:
            work = group.create_task(run_and_check, name="sim-run")
            while not work.done():
                await asyncio.wait([work], timeout=_REFRESH_S)
                live.update(render(stats.summary()), refresh=True)


def render(summary: dict[str, Any]) -> Panel:
    """The live panel: counts, rate and latency of the run so far."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    latency = summary["latency_ms"]
    errors = ", ".join(f"{k}={v}" for k, v in summary["errors"].items()) or "none"
    rows = [
        ("transport", f"{summary['transport']} x {summary['devices']} devices"),
        ("to", summary["endpoint"] or "-"),
        ("elapsed", f"{summary['elapsed_s']:.1f} s"),
        ("sent", str(summary["sent"])),
        ("acknowledged", str(summary["acknowledged"])),
        ("in flight", str(summary["in_flight"])),
        ("readings ack'd", str(summary["readings_acknowledged"])),
        ("readings stored", _stored(summary)),
        ("rate", f"{summary['achieved_rate']:.1f} / {summary['target_rate']:g} msg/s"),
        ("latency p50/95/99", " / ".join(_ms(latency[k]) for k in ("p50", "p95", "p99"))),
        ("errors", errors),
        ("commands ok/error", f"{summary['commands']['ok']} / {summary['commands']['error']}"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return Panel(table, title="telehub simulate", expand=False)


def _stored(summary: dict[str, Any]) -> str:
    """What the hub holds, once read back after the run; missing devices counted."""
    stored = summary["readings_stored"]
    if stored is None:
        return "(read back at the end)"
    missing = summary["missing"]
    return f"{stored}, {len(missing)} devices short" if missing else str(stored)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
