"""One backend's benchmark run: its plan, its processes and the counters all phases share."""

from __future__ import annotations

from dataclasses import dataclass, field

from _cpu import Cpu, _proc_cpu, idle_cpu
from _harness import Backend
from _mqtt import Bridge, Broker, Children, Probe
from _mqtt_live import Delivered, Subscribers

MAX_MESSAGES = 50_000  # per measurement: beyond 65,535 unacknowledged QoS 1 a client stalls
QUIET_S = {1: 20.0, 0: 2.0}  # give up waiting after this long without progress
_CPU_ORDER = (
    *("bridge", "serve", "mosquitto", "C clients", "api", "ws clients", "postgres", "bench"),
    "other",
)


@dataclass(frozen=True)
class Plan:
    publishers: int
    messages: int  # per measurement, all publishers together
    rounds: int
    latency_seconds: float
    subscribers: int = 0  # WebSocket clients of a `telehub api` on the Redis bus (0: none)
    subscriber_procs: int = 4
    embedded: bool = True  # the embedded broker's QoS 1 rounds too


@dataclass(frozen=True)
class Measure:
    sent: int
    got: int  # committed (bridge) or received (raw)
    seconds: float  # publishers' start → last commit / last receive
    publish_s: float  # publishers' start → all publishers exited
    delivered: Delivered | None = None  # what the WebSocket subscribers got (bridge rounds)
    catch_up: float = 0.0  # last commit seen → last reading delivered to a subscriber

    @property
    def rate(self) -> float:
        return self.got / self.seconds if self.seconds > 0 else 0.0


def describe(cpu: Cpu) -> str:
    """``Cpu.describe`` with the api process and the WebSocket clients too."""
    return ", ".join(
        f"{k} {max(0.0, 100 * cpu.share(k)):.0f}%" for k in _CPU_ORDER if k in cpu.seconds
    )


@dataclass
class Run:
    """One backend's broker, bridge and probe, and the seq counter shared by all phases."""

    backend: Backend
    children: Children
    broker: Broker
    bridge: Bridge
    probe: Probe
    devices: list[str]
    subs: Subscribers | None = None
    next_seq: int = 0
    cpu: dict[str, Cpu] = field(default_factory=dict)
    runs: int = 0
    serve_pid: int | None = None  # `telehub serve` with the embedded broker, if running

    def take(self, per_device: int) -> int:
        first, self.next_seq = self.next_seq, self.next_seq + per_device
        return first

    def settle(self) -> None:
        """Start each measurement with the bridge (and the api) idle, not finishing the
        previous one."""
        idle_cpu(self.bridge.proc.pid)
        if self.subs is not None:
            idle_cpu(self.subs.server.proc.pid)

    def snap(self) -> Cpu:
        cpu = Cpu.snap(self.bridge, self.broker, postgres=self.backend.is_pg)
        extra = {}
        if self.subs is not None:
            extra["api"] = _proc_cpu(self.subs.server.proc.pid)
            extra["ws clients"] = sum(_proc_cpu(pid) for pid in self.subs.pids)
        if self.serve_pid is not None:
            extra["serve"] = _proc_cpu(self.serve_pid)
        cpu.seconds["other"] -= sum(extra.values())  # Cpu.snap counted them as other
        cpu.seconds.update(extra)
        return cpu

    def charge(self, key: str, before: Cpu) -> None:
        self.cpu[key] = self.cpu.get(key, Cpu()) + (self.snap() - before)

    def reset_subscribers(self) -> None:
        if self.subs is not None:
            self.subs.reset()

    async def delivered(self, committed: int) -> Delivered | None:
        """What the subscribers got since the reset, once they have ``committed`` each."""
        return None if self.subs is None else await self.subs.settle(committed)

    def client_id(self, role: str) -> str:
        self.runs += 1
        return f"bench-{role}-{self.runs}"
