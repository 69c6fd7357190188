"""CPU used per part of a benchmark run (bridge, broker, clients, PostgreSQL, the rest),
from /proc, so a figure comes with where its time went and how busy the machine was."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

from _mqtt import Bridge, Broker

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime


def _postgres_cpu() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += _proc_cpu(int(entry.name))
            except OSError:
                continue
    return total


def _machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (all cpus)."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]
    return (sum(parts[:8]) - idle) / _CLK_TCK


@dataclass
class Cpu:
    """CPU seconds per component; subtract two snapshots for one phase."""

    seconds: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0

    @classmethod
    def snap(cls, bridge: Bridge, broker: Broker, *, postgres: bool) -> Cpu:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped clients
        me = resource.getrusage(resource.RUSAGE_SELF)
        seconds = {
            "bridge": _proc_cpu(bridge.proc.pid),
            "mosquitto": _proc_cpu(broker.proc.pid),
            "C clients": kids.ru_utime + kids.ru_stime,
            "bench": me.ru_utime + me.ru_stime,
        }
        if postgres:
            seconds["postgres"] = _postgres_cpu()
        # Whatever else ran (kernel, other people's processes on a shared machine).
        seconds["other"] = _machine_busy() - sum(seconds.values())
        return cls(seconds, time.monotonic())

    def __sub__(self, other: Cpu) -> Cpu:
        spent = {k: v - other.seconds.get(k, 0.0) for k, v in self.seconds.items()}
        return Cpu(spent, self.wall - other.wall)

    def __add__(self, other: Cpu) -> Cpu:
        keys = self.seconds.keys() | other.seconds.keys()
        added = {k: self.seconds.get(k, 0.0) + other.seconds.get(k, 0.0) for k in keys}
        return Cpu(added, self.wall + other.wall)

    def share(self, key: str) -> float:
        """``key``'s CPU seconds per wall second (1.0 = one core busy)."""
        return self.seconds.get(key, 0.0) / self.wall if self.wall else 0.0

    def describe(self) -> str:
        order = ["bridge", "mosquitto", "C clients", "postgres", "bench", "other"]
        # "other" is a difference of two clocks of tick resolution: never shown below 0.
        return ", ".join(
            f"{k} {max(0.0, 100 * self.share(k)):.0f}%" for k in order if k in self.seconds
        )


def idle_cpu(pid: int, *, below: float = 0.05, window: float = 0.1, limit: float = 10.0) -> None:
    """Wait until process ``pid`` uses less than ``below`` of a core over ``window`` s
    (the bridge finishing acks and cleanup of the previous round), at most ``limit`` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = _proc_cpu(pid)
        time.sleep(window)
        if _proc_cpu(pid) - before < below * window:
            return


# ---------------------------------------------------------------- the readings table
