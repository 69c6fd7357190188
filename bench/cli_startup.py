"""telehub CLI start-up benchmark: the wall time of a fresh ``telehub`` process, next to
the bare imports a typer + requests + rich command cannot do without, in the same run.

    .venv/bin/python bench/cli_startup.py [--quick] [--reps 15]

Each measure is a new process, timed from spawn to exit (wall clock), ``--reps`` times;
the median counts. The measures run in turn within each repetition (rotated, so none
always goes first), after one untimed run of each:

(0) baseline: ``python -c "import typer, requests, rich"`` (this venv's python);
(1) ``telehub --help``;
(2) ``telehub devices list`` against a hub this benchmark starts itself: ``telehub
    serve`` on free ports (HTTP, gRPC, embedded MQTT) with a temporary SQLite database
    and an admin token made for the run, holding 11 devices;
(3) ``telehub serve --help``, for information (no target).

Target: (1) and (2) within 1.5x the baseline. The timed processes run with bytecode
caching on, as a user's install has it: PYTHONDONTWRITEBYTECODE is removed from their
environment (some shells here set it, which makes every import compile its source
each time). TELEHUB_* is removed too, and TELEHUB_CLI_CONFIG points at no file. The
machine is shared and noisy: the ratios are what count. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

from _harness import TELEHUB, Server, drop_backend, free_port, make_backend, run_async, setup_hub
from _report import (
    NO_TARGET,
    Figure,
    Report,
    command,
    console,
    header,
    result_name,
    save_results,
    show,
)

TARGET = 1.5  # telehub's command / the bare imports
BASELINE = "baseline"


@dataclass(frozen=True)
class Measure:
    label: str
    argv: list[str]
    target: bool  # held to TARGET, or shown for information


@dataclass
class Timings:
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def median(self, label: str) -> float:
        return statistics.median(self.seconds[label])

    def spread(self, label: str) -> str:
        times = sorted(self.seconds[label])
        return f"min {times[0]:.3f} s, max {times[-1]:.3f} s"


def user_env(workdir: str) -> dict[str, str]:
    """The environment of a user's shell: bytecode caching on, no telehub settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("TELEHUB_")
    }
    env["TELEHUB_CLI_CONFIG"] = os.path.join(workdir, "no-login.toml")
    return env


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed


def measures(base: str, admin: str) -> list[Measure]:
    telehub = str(TELEHUB)
    return [
        Measure(BASELINE, [sys.executable, "-c", "import typer, requests, rich"], False),
        Measure("telehub --help", [telehub, "--help"], True),
        Measure(
            "telehub devices list (against telehub serve)",
            [telehub, "devices", "list", "--url", base, "--token", admin],
            True,
        ),
        Measure("telehub serve --help", [telehub, "serve", "--help"], False),
    ]


def run(reps: int, env: dict[str, str], plan: list[Measure]) -> Timings:
    timings = Timings({m.label: [] for m in plan})
    for m in plan:  # untimed: the first run writes the bytecode caches
        timed(m.argv, env)
    for r in range(reps):
        shift = r % len(plan)
        for m in plan[shift:] + plan[:shift]:
            timings.seconds[m.label].append(timed(m.argv, env))
    return timings


def report(plan: list[Measure], timings: Timings, reps: int) -> Report:
    rep = Report("sqlite")
    base = timings.median(BASELINE)
    shown_base = f"{base:.3f} s (python -c 'import typer, requests, rich')"
    for m in plan:
        if m.label == BASELINE:
            continue
        value = timings.median(m.label)
        ratio = value / base
        rep.figures.append(
            Figure(
                m.label,
                f"{value:.3f} s",
                shown_base,
                ratio,
                f"ratio ≤ {TARGET:g}" if m.target else NO_TARGET,
                ratio <= TARGET if m.target else None,
            )
        )
    rep.notes += [
        f"median wall time of {reps} fresh processes each ({m.label}: {timings.spread(m.label)})"
        for m in plan
    ]
    rep.notes.append(
        "the timed processes run with PYTHONDONTWRITEBYTECODE removed (bytecode caching "
        "on, as a user's install has it), after one untimed run of each"
    )
    return rep


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 repetitions")
    parser.add_argument("--reps", type=int, help="processes per measure (default 15)")
    args = parser.parse_args()
    reps = args.reps or (5 if args.quick else 15)
    if reps < 1:
        parser.error("--reps must be ≥ 1")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    header("telehub CLI start-up bench", f"{reps} processes per measure", "server knobs")
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        console.print(
            "PYTHONDONTWRITEBYTECODE is set here: removed for the timed processes", highlight=False
        )
    t0 = time.perf_counter()
    backend = make_backend("sqlite")
    try:
        fixture = run_async(setup_hub(backend, 10))
        argv = [str(TELEHUB), "serve", "--mqtt-port", str(free_port())]
        argv += ["--grpc-port", str(free_port())]
        server = Server("telehub-serve", argv, backend.env(), backend.workdir)
        try:
            server.wait_ready()
            plan = measures(server.base, fixture.admin)
            console.print(f"[bold]{len(plan)} measures[/] x {reps} processes …")
            timings = run(reps, user_env(str(backend.workdir)), plan)
        finally:
            server.stop()
    finally:
        run_async(drop_backend(backend))
    rep = report(plan, timings, reps)
    shown = show(rep, "CLI start-up, fresh process", "telehub", time.perf_counter() - t0)
    save_results(
        result_name("cli", quick=args.quick),
        title="CLI start-up",
        command=command("bench-cli"),
        tables=[shown],
    )


if __name__ == "__main__":
    main()
