"""The gRPC benchmark's sums over rounds, its table rows and its notes."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from _grpc_feed import SIZES
from _grpc_load import STREAMS, Phase, Result, Usage
from _harness import CommitStats
from _load import quantile
from _report import NO_TARGET, Figure

STREAM_VS_RAW = 0.6


@dataclass
class Measured:
    """One phase over every round."""

    results: list[Result] = field(default_factory=list)
    stats: list[CommitStats] = field(default_factory=list)

    @property
    def rate(self) -> float:
        seconds = sum(r.seconds for r in self.results)
        return sum(r.accepted for r in self.results) / seconds if seconds else 0.0

    @property
    def server(self) -> CommitStats:
        """The per-round scrapes added up (the bucket counts left out)."""
        return CommitStats(
            sum(s.commits for s in self.stats),
            sum(s.readings for s in self.stats),
            sum(s.seconds for s in self.stats),
        )

    @property
    def usage(self) -> Usage:
        total = Usage(0.0, 0.0, 0.0, 0.0, 0.0)
        for r in self.results:
            total += r.usage
        return total

    def latency(self) -> str:
        merged = [x for r in self.results for c in r.clients for x in c.latencies]
        if not merged:
            return ""
        p50, p95 = (1000 * quantile(merged, q) for q in (0.5, 0.95))
        return f"; latency p50 {p50:.1f} ms, p95 {p95:.1f} ms"


@dataclass
class Check:
    """Every reading sent is new: each must come back accepted, none duplicate or rejected."""

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return self.sent == self.accepted and not (self.duplicates or self.rejected or self.errors)


@dataclass
class Raw:
    rows: int = 0
    seconds: float = 0.0
    commits: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class Totals:
    phases: dict[Phase, Measured] = field(default_factory=dict)
    raw: dict[int, Raw] = field(default_factory=dict)
    checks: dict[Phase, Check] = field(default_factory=dict)  # warm-ups included
    ran_dry: Counter[Phase] = field(default_factory=Counter)

    def add(self, result: Result, stats: CommitStats) -> None:
        measured = self.phases.setdefault(result.phase, Measured())
        measured.results.append(result)
        measured.stats.append(stats)
        if result.ran_dry:
            self.ran_dry[result.phase] += 1

    def add_raw(self, size: int, rows: int, seconds: float, commit: int) -> None:
        raw = self.raw.setdefault(size, Raw())
        raw.rows += rows
        raw.seconds += seconds
        raw.commits.append(commit)

    def check(self, result: Result) -> None:
        check = self.checks.setdefault(result.phase, Check())
        for c in result.clients:
            check.sent += c.readings
            check.accepted += c.accepted
            check.duplicates += c.duplicates
            check.rejected += c.rejected
        check.errors.update(result.errors)

    def overall(self) -> Check:
        total = Check()
        for c in self.checks.values():
            total.sent += c.sent
            total.accepted += c.accepted
            total.duplicates += c.duplicates
            total.rejected += c.rejected
            total.errors.update(c.errors)
        return total


def _ratio(value: float, baseline: float) -> float | None:
    return value / baseline if baseline else None


def _at_least(ratio: float | None, target: float) -> bool:
    return ratio is not None and ratio >= target


def rest_best(totals: Totals, size: int) -> Phase:
    """REST's fastest client count at this batch size, over every round: the baseline."""
    rest = [p for p in totals.phases if p.transport == "rest" and p.size == size]
    return max(rest, key=lambda p: totals.phases[p].rate)


def figures(totals: Totals, *, postgres: bool) -> list[Figure]:
    driver = "asyncpg COPY" if postgres else "sqlite3 executemany"
    out: list[Figure] = []
    for size in SIZES:
        raw = totals.raw[size].rate
        raw_label = f"{raw:,.0f} rows/s raw ({driver})"
        best = rest_best(totals, size)
        best_rate = totals.phases[best].rate
        for kind in STREAMS:
            stream = Phase(kind, 1, size)
            rate = totals.phases[stream].rate
            ratio = _ratio(rate, raw)
            out.append(
                Figure(
                    str(stream),
                    f"{rate:,.0f} readings/s",
                    raw_label,
                    ratio,
                    f"ratio ≥ {STREAM_VS_RAW}",
                    _at_least(ratio, STREAM_VS_RAW),
                )
            )
            out.append(
                Figure(
                    f"{stream.name} vs REST batch at its best, {size:,}/batch",
                    f"{rate:,.0f} readings/s",
                    f"{best_rate:,.0f} readings/s ({best.name}, the best client count)",
                    _ratio(rate, best_rate),
                    NO_TARGET,
                    None,
                )
            )
        for phase, measured in totals.phases.items():
            if phase.size == size and phase.transport not in STREAMS:
                rate = measured.rate
                out.append(
                    Figure(
                        str(phase),
                        f"{rate:,.0f} readings/s",
                        raw_label,
                        _ratio(rate, raw),
                        "-",
                        None,
                    )
                )
    check = totals.overall()
    out.append(
        Figure(
            "readings accepted, every transport and phase",
            f"{check.accepted:,} accepted",
            f"{check.sent:,} sent",
            _ratio(check.accepted, check.sent),
            "all, once",
            check.ok,
        )
    )
    return out


def notes(totals: Totals, clients: int, rest: list[int], *, postgres: bool) -> list[str]:
    counts = ", ".join(f"x{n}" for n in rest)
    out = [
        "xN = N concurrent clients, each one device writing with its own token, one batch in "
        "flight (a stream: up to the server's window, TELEHUB_GRPC_STREAM_WINDOW_READINGS); "
        f"REST ran {counts} and the stream is compared with its fastest (no target was set "
        f"for that; the old ≥ 2 was against one REST client); unary ran x1 and x{clients}; "
        "every other ratio is against the raw driver inserting the series stream's rows; "
        "(series) = the compact Series form, (rows) = one Reading message per reading"
    ]
    for phase, measured in totals.phases.items():
        s = measured.server
        wall = sum(r.seconds for r in measured.results)
        rounds = ", ".join(f"{r.rate:,.0f}" for r in measured.results)
        out.append(
            f"{phase}: {measured.rate:,.0f}/s (rounds {rounds}){measured.latency()}; server "
            f"{s.commits:,.0f} commits, {s.mean_batch:,.0f} readings/commit, "
            f"{s.mean_commit_ms:.1f} ms each ({s.seconds / wall:.0%} of the time); "
            f"cpu {measured.usage.describe(postgres=postgres)}"
        )
    other = [m.usage.shares(postgres=postgres)["other"] for m in totals.phases.values()]
    busy = [x for x in other if x > 0.3]
    if busy:
        out.append(
            f"[yellow]shared machine[/]: processes outside the benchmark used more than 30% of a "
            f"core in {len(busy)} of {len(other)} phases (up to {100 * max(busy):.0f}%, "
            f"{os.cpu_count()} cpus): those figures are low (see cpu ... other above)"
        )
    for size in SIZES:
        best = rest_best(totals, size)
        if best.clients == max(rest):
            out.append(
                f"[yellow]REST's best at {size:,}/batch is the most clients tried (x{best.clients})"
                "[/]: REST might do better still with more, and the ratio be lower"
            )
    for size, raw in totals.raw.items():
        commits = ", ".join(f"{c:,}" for c in raw.commits)
        out.append(
            f"raw baseline, {size:,}/batch: the series stream's rows, {raw.rows:,} in "
            f"{raw.seconds:.2f} s, in commits of {commits} rows (the server's mean per "
            "stream round)"
        )
    for phase, n in totals.ran_dry.items():
        out.append(
            f"[yellow]{phase}: used every pre-built batch before the deadline in {n} round(s)[/] "
            "(its rate holds, over a shorter time)"
        )
    bad = {p: c for p, c in totals.checks.items() if not c.ok}
    if not bad:
        out.append(
            f"[green]check[/]: all {totals.overall().sent:,} readings sent (warm-ups included) "
            "came back accepted, none duplicate or rejected, no errors"
        )
    for phase, c in bad.items():
        out.append(
            f"[bold red]MISMATCH {phase}[/]: sent {c.sent:,}, accepted {c.accepted:,}, "
            f"duplicates {c.duplicates:,}, rejected {c.rejected:,}; errors {dict(c.errors)}"
        )
    return out
