"""telehub MQTT ingest benchmark: the bridge next to the bare broker, in the same run.

    .venv/bin/python bench/mqtt_ingest.py [--backend sqlite|postgres|both] [--quick]
        [--subscribers 100] [--subscriber-procs 4]

The benchmark starts its own Mosquitto (free port, ``max_queued_messages 0``, no
persistence) and ``telehub ingest`` on it. Every figure is measured with live
WebSocket subscribers attached (``--subscribers``, 100 by default; 0 leaves them out,
and the bus with them), in the production topology: the bridge publishes what it
commits on the Redis bus (``TELEHUB_BENCH_BUS_URL``, default redis://127.0.0.1:6379/0,
under a channel prefix of this run only); a separate ``telehub api`` on the same
database and bus pushes it on ``/api/v1/ws`` to clients in a few processes, each
subscribed to every device (``_mqtt_live``). After each bridge round they get time to
catch up; the table compares what each received with what was committed, and
counts ``gap`` frames. Publishers are C clients: one
``mosquitto_pub -l`` per device (topic), all in parallel, each publishing one
reading per line ``{"ts": ..., "values": {"v": ...}}``; a measurement is at most
50,000 messages (beyond 65,535 unacknowledged QoS 1 messages a client stalls).

(1) QoS 1: readings committed per second through the bridge, from the publishers'
    start until the last reading is visible in ``readings``, vs the raw broker rate:
    the same publishers and messages to a ``mosquitto_sub -C N`` at QoS 1 (from the
    same start to the subscriber's receive time of the last message). Raw and bridge
    rounds alternate, to share the noise.
    Next to them, the embedded broker: ``telehub serve`` with amqtt inside, the same
    publishers logged in as their devices, each PUBACK sent after the commit
    (``_mqtt_embedded``); its rate runs until the last publisher exited, all
    acknowledged, and every acknowledged message must be stored.
(2) The same at QoS 0. Loss is allowed there, so committed/sent and received/sent
    are reported too, and each rate counts only what arrived.
(3) p99 publish→commit latency at half the peak QoS 1 rate of (1). A thread of this
    process feeds lines at a fixed rate into the stdin of the same C publishers and
    notes the wall-clock time each line is written (so the figure includes
    mosquitto_pub's read and publish). Another connection polls ``readings`` every
    few ms (a primary-key range scan per device) and notes the wall-clock time each
    reading first appears, taken when the poll returns. So each latency is an upper
    bound: a commit lies between the previous poll and this one, and the reading
    was committed before the query that found it; the poll cycle is printed as the
    resolution. Baseline: the same feed through the broker to ``mosquitto_sub -F %U``.

Commits are watched from outside (``/metrics`` is only on the HTTP API): after the
publishers exit, a lookup of each device's last reading every 10 ms, then one exact
count. The machine is shared and noisy: the ratios are what count. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import time

from _cpu import idle_cpu
from _harness import Backend, drop_backend, make_backend, run_async, setup_hub
from _mqtt import Bridge, Broker, Children, Probe
from _mqtt_embedded import EmbeddedHub, embedded_round
from _mqtt_latency import bench_latency
from _mqtt_live import Delivered, bus_env, check_bus, live_knobs, subscribers
from _mqtt_rounds import hub_round, raw_round
from _mqtt_run import MAX_MESSAGES, QUIET_S, Measure, Plan, Run, describe
from _report import (
    Figure,
    Report,
    Shown,
    command,
    console,
    header,
    result_name,
    save_results,
    show,
)

TARGETS = {1: 0.6, 0: 0.45}


def _pct(m: Measure) -> str:
    return f"{m.got:,}/{m.sent:,} = {m.got / m.sent:.1%}"


async def bench_rates(
    run: Run, plan: Plan, rep: Report, embedded: EmbeddedHub | None = None
) -> float:
    """(1) and (2); returns the bridge's QoS 1 rate (the peak the latency phase halves)."""
    per_device = plan.messages // plan.publishers
    await raw_round(run, 1, 500)  # warm-up: connections, caches, device lookups
    await hub_round(run, 1, 500)
    if embedded is not None:
        await _embedded(run, embedded, 500)
    peak = 0.0
    for qos in (1, 0):
        raws, hubs, embs = [], [], []
        for _ in range(plan.rounds):
            raws.append(await raw_round(run, qos, per_device))
            hubs.append(await hub_round(run, qos, per_device))
            if qos == 1 and embedded is not None:
                embs.append(await _embedded(run, embedded, per_device))
        raw_rate = sum(m.got for m in raws) / sum(m.seconds for m in raws)
        hub_rate = sum(m.got for m in hubs) / sum(m.seconds for m in hubs)
        peak = peak or hub_rate
        ratio = hub_rate / raw_rate
        label = (
            f"QoS {qos}: {plan.publishers} x mosquitto_pub, {plan.publishers * per_device:,} msgs"
        )
        loss = qos == 0 or any(m.got != m.sent for m in hubs + raws)
        rep.figures.append(
            Figure(
                label,
                f"{hub_rate:,.0f} readings/s committed"
                + (f" ({_pct(_sum(hubs))})" if loss else ""),
                f"{raw_rate:,.0f} msg/s (mosquitto_sub)"
                + (f" ({_pct(_sum(raws))})" if loss else ""),
                ratio,
                f"ratio ≥ {TARGETS[qos]}",
                ratio >= TARGETS[qos],
            )
        )
        if embs:
            emb_rate = sum(m.got for m in embs) / sum(m.seconds for m in embs)
            rep.figures.append(
                Figure(
                    f"QoS 1, embedded broker (amqtt in telehub serve, ack after commit), "
                    f"{plan.publishers * per_device:,} msgs",
                    f"{emb_rate:,.0f} readings/s committed and acknowledged, all stored",
                    f"{raw_rate:,.0f} msg/s (bare mosquitto)",
                    emb_rate / raw_rate,
                    f"vs bridge on Mosquitto {emb_rate / hub_rate:.2f}",
                    None,
                )
            )
            rep.notes.append(
                "QoS 1 embedded per round: "
                + "; ".join(f"{m.rate:,.0f}/s ({m.seconds:.1f} s)" for m in embs)
                + f"; cpu, % of one core: {describe(run.cpu['embedded q1'])}"
            )
        rep.notes.append(
            f"QoS {qos} per round: "
            + "; ".join(
                f"raw {r.rate:,.0f}/s vs bridge {h.rate:,.0f}/s "
                f"(publishers done {h.publish_s:.1f} s, committed {h.seconds:.1f} s)"
                for r, h in zip(raws, hubs, strict=True)
            )
        )
        for m in hubs:
            if m.got != m.sent:
                rep.notes.append(
                    f"[yellow]QoS {qos}: only {_pct(m)} readings committed[/] "
                    f"(no progress for {QUIET_S[qos]:.0f} s)"
                )
        rep.notes.append(
            f"  cpu, % of one core: bridge rounds: {describe(run.cpu[f'bridge q{qos}'])}; "
            f"raw rounds: {describe(run.cpu[f'raw q{qos}'])}"
        )
        if run.subs is not None:
            _subscriber_figure(run, qos, hubs, rep)
    return peak


async def _embedded(run: Run, embedded: EmbeddedHub, per_device: int) -> Measure:
    first = run.take(per_device)
    idle_cpu(embedded.proc.pid)
    before = run.snap()
    measure = await embedded_round(
        run.children, embedded, run.probe, run.backend.workdir, first, per_device
    )
    run.charge("embedded q1", before)
    return measure


def _subscriber_figure(run: Run, qos: int, hubs: list[Measure], rep: Report) -> None:
    """Every committed reading should reach every subscriber, once, with no gap."""
    assert run.subs is not None
    committed = sum(m.got for m in hubs)
    got = sum((m.delivered for m in hubs if m.delivered is not None), Delivered())
    api = run.cpu[f"bridge q{qos}"].share("api")
    silent = got.unaccounted(committed)  # missing from a subscriber, and no gap said so
    rep.figures.append(
        Figure(
            f"QoS {qos}: readings per WebSocket subscriber ({run.subs.count} attached)",
            f"{got.low:,}…{got.high:,} each, {got.gaps} gaps"
            + (f", {silent:,} lost without one" if silent else "")
            + f"; api cpu {100 * api:.0f}%",
            f"{committed:,} committed",
            got.low / committed if committed else None,
            "= committed, 0 gaps",
            got.complete(committed),
        )
    )
    fanout = run.cpu[f"fanout q{qos}"]
    deliveries = sum(got.counts)
    api_s = fanout.seconds.get("api", 0.0)
    rep.notes.append(
        f"  subscribers, QoS {qos}: {got.describe(committed)}; last reading delivered "
        + ", ".join(f"{m.catch_up:+.2f} s" for m in hubs)
        + " after the last commit was seen; until then, api "
        f"{api_s:.1f} cpu-s = {1e6 * api_s / max(1, deliveries):.1f} µs per delivered reading, "
        f"ws clients {fanout.seconds.get('ws clients', 0.0):.1f} cpu-s"
    )


def _shared_machine(run: Run, rep: Report) -> None:
    busy = {k: c.share("other") for k, c in run.cpu.items() if c.share("other") > 0.3}
    if busy:
        rep.notes.append(
            "[yellow]shared machine[/]: processes outside the benchmark used "
            + ", ".join(f"{100 * v:.0f}% of a core in {k}" for k, v in busy.items())
            + f" ({os.cpu_count()} cpus): those figures are low"
        )


def _sum(ms: list[Measure]) -> Measure:
    return Measure(sum(m.sent for m in ms), sum(m.got for m in ms), 0.0, 0.0)


async def _run_backend(backend: Backend, children: Children, plan: Plan, rep: Report) -> None:
    fixture = await setup_hub(backend, plan.publishers)
    devices = [dev for dev, _ in fixture.devices]
    broker = Broker(children, backend.workdir)
    # With subscribers, the production topology: the bridge publishes its commits on
    # the Redis bus (channels of this run only), a separate api serves the WebSockets.
    env = bus_env() if plan.subscribers else {}
    bridge = Bridge(children, backend, broker, env)
    with contextlib.ExitStack() as stack:
        stack.callback(bridge.stop)  # the last to stop: the api first, so nothing is pushed
        embedded = EmbeddedHub(children, backend, fixture.devices) if plan.embedded else None
        if embedded is not None:
            stack.callback(embedded.stop)
        subs = None
        if plan.subscribers:
            console.print(f"[bold]{backend.name}[/]: {plan.subscribers} WebSocket subscribers …")
            subs = stack.enter_context(
                subscribers(
                    backend,
                    {**backend.env(), **env},
                    fixture.admin,
                    plan.subscribers,
                    plan.subscriber_procs,
                )
            )
            rep.notes.append(
                f"[bold]{plan.subscribers} WebSocket subscribers attached[/] throughout: "
                f"`telehub ingest` publishes its commits on the Redis bus ({env['TELEHUB_BUS_URL']}"
                f", channel prefix {subs.prefix}), a separate `telehub api` on the same database "
                f"pushes them on /api/v1/ws to {plan.subscribers} clients in "
                f'{len(subs.pids)} processes, each subscribed to devices ["*"] (admin token); '
                f"api knobs: {live_knobs() or 'defaults'}"
            )
        async with Probe(backend, devices) as probe:
            run = Run(backend, children, broker, bridge, probe, devices, subs)
            run.serve_pid = embedded.proc.pid if embedded is not None else None
            console.print(f"[bold]{backend.name}[/]: QoS 1 and QoS 0 rounds …")
            peak = await bench_rates(run, plan, rep, embedded)
            if embedded is not None:  # its process must not share the latency phase
                embedded.stop()
                run.serve_pid = None
            console.print(f"[bold]{backend.name}[/]: latency at half peak …")
            await bench_latency(run, peak, plan, rep)
            _shared_machine(run, rep)
        if subs is not None:
            rep.notes.append(
                f"api telehub_bus_dropped_total at the end: {subs.dropped_total():,.0f}"
            )
            _complaints(rep, "api", subs.complaints())
    _complaints(rep, "bridge", bridge.complaints())
    if embedded is not None:
        _complaints(rep, "telehub serve (embedded broker)", embedded.complaints())


def _complaints(rep: Report, who: str, complaints: list[str]) -> None:
    if complaints:
        rep.notes.append(
            f"[yellow]{who} logged {len(complaints)} warnings/errors[/], first: {complaints[0]}"
        )


def bench_backend(name: str, plan: Plan) -> Report:
    rep = Report(name)
    backend = make_backend(name)
    children = Children()
    try:
        run_async(_run_backend(backend, children, plan, rep))
    finally:
        children.close()
        run_async(drop_backend(backend))
    return rep


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="one round of 20,000 messages")
    parser.add_argument("--publishers", type=int, default=4, help="mosquitto_pub processes")
    parser.add_argument(
        "--subscribers",
        type=int,
        default=100,
        help="WebSocket clients of a separate `telehub api` on the Redis bus (0: no api, no bus)",
    )
    parser.add_argument(
        "--subscriber-procs", type=int, default=4, help="processes the subscribers run in"
    )
    parser.add_argument(
        "--no-embedded",
        action="store_true",
        help="leave out the embedded broker's QoS 1 rounds (telehub serve, ack after commit)",
    )
    args = parser.parse_args()
    if args.subscribers < 0 or args.subscriber_procs < 1:
        parser.error("--subscribers must be ≥ 0 and --subscriber-procs ≥ 1")
    if args.subscribers and (why := check_bus()):
        parser.error(f"{why}: set TELEHUB_BENCH_BUS_URL, or run with --subscribers 0")
    for tool in ("mosquitto", "mosquitto_pub", "mosquitto_sub"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (Debian: apt-get install mosquitto-clients)")
    subs = {
        "subscribers": args.subscribers,
        "subscriber_procs": args.subscriber_procs,
        "embedded": not args.no_embedded,
    }
    plan = (
        Plan(args.publishers, messages=20_000, rounds=1, latency_seconds=3.0, **subs)
        if args.quick
        else Plan(args.publishers, messages=MAX_MESSAGES, rounds=3, latency_seconds=8.0, **subs)
    )
    # SIGTERM unwinds like Ctrl-C, through every finally that stops a child process.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    header("telehub mqtt bench", plan, "bridge knobs")
    names = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    tables: list[Shown] = []
    for name in names:
        t0 = time.perf_counter()
        rep = bench_backend(name, plan)
        title = "telehub MQTT ingest" + (
            f", {plan.subscribers} WebSocket subscribers attached" if plan.subscribers else ""
        )
        tables.append(show(rep, title, "telehub ingest", time.perf_counter() - t0))
    # Without the embedded broker's rounds a run stands in for no full run.
    part = "-no-embedded" if args.no_embedded else ""
    save_results(
        result_name(f"mqtt{part}", backend=args.backend, default="both", quick=args.quick),
        title="MQTT ingest",
        command=command("bench-mqtt"),
        tables=tables,
    )


if __name__ == "__main__":
    main()
