"""One backend's benchmark run: its plan, its processes and the counters all phases share."""

from __future__ import annotations

from dataclasses import dataclass, field

from _cpu import Cpu, idle_cpu
from _harness import Backend
from _mqtt import Bridge, Broker, Children, Probe

MAX_MESSAGES = 50_000  # per measurement: beyond 65,535 unacknowledged QoS 1 a client stalls
QUIET_S = {1: 20.0, 0: 2.0}  # give up waiting after this long without progress


@dataclass(frozen=True)
class Plan:
    publishers: int
    messages: int  # per measurement, all publishers together
    rounds: int
    latency_seconds: float


@dataclass(frozen=True)
class Measure:
    sent: int
    got: int  # committed (bridge) or received (raw)
    seconds: float  # publishers' start → last commit / last receive
    publish_s: float  # publishers' start → all publishers exited

    @property
    def rate(self) -> float:
        return self.got / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Run:
    """One backend's broker, bridge and probe, and the seq counter shared by all phases."""

    backend: Backend
    children: Children
    broker: Broker
    bridge: Bridge
    probe: Probe
    devices: list[str]
    next_seq: int = 0
    cpu: dict[str, Cpu] = field(default_factory=dict)
    runs: int = 0

    def take(self, per_device: int) -> int:
        first, self.next_seq = self.next_seq, self.next_seq + per_device
        return first

    def settle(self) -> None:
        """Start each measurement with the bridge idle, not finishing the previous one."""
        idle_cpu(self.bridge.proc.pid)

    def snap(self) -> Cpu:
        return Cpu.snap(self.bridge, self.broker, postgres=self.backend.is_pg)

    def charge(self, key: str, before: Cpu) -> None:
        self.cpu[key] = self.cpu.get(key, Cpu()) + (self.snap() - before)

    def client_id(self, role: str) -> str:
        self.runs += 1
        return f"bench-{role}-{self.runs}"
