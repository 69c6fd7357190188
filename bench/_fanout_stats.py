"""Latency histograms that merge across processes, and what /proc says about a process."""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

BIN_S = 1e-4  # histogram resolution: 0.1 ms
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class Histogram(Counter[int]):
    """Latencies counted in 0.1 ms bins (negative ones too), summable with ``+=``."""

    def add(self, seconds: float, n: int = 1) -> None:
        self[int(seconds // BIN_S)] += n

    def quantile(self, q: float) -> float:
        """The upper edge of the bin holding the ``q`` quantile, in seconds."""
        total = self.total()
        if not total:
            return float("nan")
        rank = q * total
        seen = 0
        for key in sorted(self):
            seen += self[key]
            if seen >= rank:
                return (key + 1) * BIN_S
        return (max(self) + 1) * BIN_S

    def ms(self, q: float) -> str:
        return f"{1000 * self.quantile(q):.1f}"


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (resident memory, anonymous and file-backed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_busy() -> tuple[float, float]:
    """CPU seconds the machine spent not idle, and of those in interrupts (all cpus)."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(parts[:8]) - parts[3] - parts[4]
    return busy / _CLK_TCK, (parts[5] + parts[6]) / _CLK_TCK  # irq + softirq


@dataclass(frozen=True)
class _Snap:
    wall: float
    spent: dict[str, float]
    busy: float
    irq: float


class CpuMeter:
    """CPU of named process groups over a window, as % of one core.

    ``irq`` is interrupt time (mostly loopback networking, charged to no
    process); ``other`` is everything else on the machine: other people's work
    on a shared machine shows up there.
    """

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self._pids = pids
        self._start = self._snap()
        self._end: _Snap | None = None

    def _snap(self) -> _Snap:
        spent = {k: sum(cpu_seconds(p) for p in ps) for k, ps in self._pids.items()}
        busy, irq = machine_busy()
        return _Snap(time.monotonic(), spent, busy, irq)

    def stop(self) -> CpuMeter:
        self._end = self._snap()
        return self

    def seconds(self, key: str) -> float:
        end = self._end or self._snap()
        return end.spent[key] - self._start.spent[key]

    def describe(self) -> str:
        end, start = self._end or self._snap(), self._start
        wall = max(end.wall - start.wall, 1e-9)
        used = {k: end.spent[k] - start.spent.get(k, 0.0) for k in end.spent}
        irq = end.irq - start.irq
        other = (end.busy - start.busy) - irq - sum(used.values())
        parts = [f"{k} {100 * v / wall:.0f}%" for k, v in used.items()]
        parts.append(f"irq {100 * irq / wall:.0f}%")
        parts.append(f"other {max(0.0, 100 * other / wall):.0f}%")
        return ", ".join(parts)


def raise_nofile() -> int:
    """Lift this process's soft open-files limit to the hard limit; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
