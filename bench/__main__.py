"""python -m bench [--quick] [--keep-data] [--out DIR]: see bench/__init__.py."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import nats
from nats.js.errors import NotFoundError
from rich.console import Console

from clinic_common import subjects

from . import report as rep
from .baseline import BaselineStack, baseline_tree
from .launcher import Stack
from .load import ClinicTarget, Result, add_doctor, closed_loop, open_loop
from .procstat import CpuMeter, machine_info, process_name
from .profile import messages_per_saga, nats_messages
from .reference import STREAM as REF_STREAM
from .reference import ReferenceStack, ReferenceTarget

RESULTS = Path(__file__).resolve().parent / "results"

PLANS = {
    "full": {
        "idle_s": 3.0,
        "warmup_s": 6.0,
        "closed": [(1, 12.0), (8, 12.0), (64, 12.0)],
        "doctor_closed": [(1, 10.0), (64, 12.0)],
        "open": [(300, 10.0), (600, 10.0), (800, 10.0)],
        "ref_warmup_s": 4.0,
        "ref_closed": [(64, 12.0), (1, 10.0)],
        "ab_warmup_s": 4.0,
        "ab_rounds": 2,
        "ab_closed": [(64, 12.0), (1, 8.0)],
    },
    "quick": {
        "idle_s": 1.0,
        "warmup_s": 2.0,
        "closed": [(1, 2.5), (8, 2.5), (64, 2.5)],
        "doctor_closed": [(1, 2.5), (64, 2.5)],
        "open": [(300, 2.5), (600, 2.5), (800, 2.5)],
        "ref_warmup_s": 1.5,
        "ref_closed": [(64, 2.5), (1, 2.5)],
        "ab_warmup_s": 1.5,
        "ab_rounds": 2,
        "ab_closed": [(64, 2.5), (1, 2.5)],
    },
}
MAX_IN_FLIGHT = 2000
SYSTEM_CONSUMERS = [
    (subjects.SAGA_STREAM, subjects.SCHEDULE_CONSUMER),
    (subjects.SAGA_STREAM, subjects.DISCOUNT_CONSUMER),
    (subjects.SAGA_STREAM, subjects.BOOKING_CONSUMER),
    (subjects.EVENTS_STREAM, subjects.NOTIFICATION_CONSUMER),
    (subjects.NOTIFY_STREAM, subjects.SEND_CONSUMER),
]
REF_CONSUMERS = [(REF_STREAM, "ref-a"), (REF_STREAM, "ref-b")]
MESSAGES_AT = 64  # the closed loops whose NATS messages are counted per saga (/connz around them)


class MessageCount:
    """One side's NATS messages per connection name, summed over the phases counted, and their sagas."""

    def __init__(self) -> None:
        self.sagas = 0
        self.totals: dict[str, tuple[int, int]] = {}

    def add(self, before: dict, after: dict, sagas: int) -> None:
        self.sagas += sagas
        for name, (sent, got) in after.items():
            sent0, got0 = before.get(name, (0, 0))
            total = self.totals.get(name, (0, 0))
            self.totals[name] = (total[0] + sent - sent0, total[1] + got - got0)

    def summary(self) -> dict:
        return {"sagas": self.sagas, "per_saga": messages_per_saga({}, self.totals, self.sagas)}


async def counted(monitor_port: int, count: MessageCount | None, run) -> Result:
    """`run` (a measured phase, quiet tail included) with nats-server's /connz read around it."""
    if count is None:
        return await run
    before = await asyncio.to_thread(nats_messages, monitor_port)
    result = await run
    count.add(before, await asyncio.to_thread(nats_messages, monitor_port), result.completed)
    return result


def say(console: Console, text: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}", highlight=False)


async def wait_quiet(js, consumers: list[tuple[str, str]], timeout_s: float = 60.0) -> float:
    """Until no consumer has messages waiting or unacknowledged: the tail of a phase's sagas
    (the patient's notification, off the hot path) is work that phase caused."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        busy = 0
        for stream, durable in consumers:
            try:
                info = await js.consumer_info(stream, durable)
            except NotFoundError:
                continue
            busy += info.num_pending + info.num_ack_pending
        if not busy:
            return time.perf_counter() - start
        await asyncio.sleep(0.05)
    return time.perf_counter() - start


async def measured(meter: CpuMeter, quiet, run) -> Result:
    load_before = os.getloadavg()
    before = meter.snapshot()
    result = await run
    await quiet()
    after = meter.snapshot()
    result.cpu_ms = meter.delta(before, after)
    result.loadavg_before = tuple(round(x, 2) for x in load_before)
    result.loadavg_after = tuple(round(x, 2) for x in os.getloadavg())
    return result


def _line(console: Console, r: Result) -> None:
    say(
        console,
        f"  {r.name}: {r.rate:,.0f} sagas/s, p50 {rep._f(r.pct(50), 2)} ms, p99 {rep._f(r.pct(99), 2)} ms, "
        f"errors {sum(r.errors.values())}, dropped {r.dropped}, load {r.loadavg_after}",
    )


async def run_system(
    console: Console, plan: dict, data_dir: Path, started: list, out: dict, ref_rate: float
) -> list[Result]:
    stack = Stack(data_dir)
    started.append(stack)
    say(console, f"starting nats-server, valkey and the six services in {data_dir}")
    t0 = time.perf_counter()
    await stack.start()
    say(console, f"system up in {time.perf_counter() - t0:.1f}s (gateway {stack.gateway_addr})")
    pids = stack.pids()
    edge = process_name(pids["gateway"])
    if edge != "envoy":  # the gateway column is Envoy's CPU; say so if it is not
        say(console, f"[yellow]the gateway process is {edge!r}, not envoy[/]")
    meter = CpuMeter(pids)
    nc = await nats.connect(stack.ops_nats_url, name="bench-monitor")
    js = nc.jetstream(timeout=5.0)
    target = ClinicTarget(stack.gateway_addr, stack.jwt_secret)
    await target.open()
    results: list[Result] = []

    def quiet():
        return wait_quiet(js, SYSTEM_CONSUMERS)

    try:
        before = meter.snapshot()
        await asyncio.sleep(plan["idle_s"])
        idle = meter.delta(before, meter.snapshot())
        out["idle_cpu_ms_per_s"] = {k: round(v / plan["idle_s"], 2) for k, v in idle.items()}

        say(console, f"warm-up: closed loop c=8 for {plan['warmup_s']}s")
        warm = await measured(meter, quiet, closed_loop("warm-up", target.saga, 8, plan["warmup_s"]))
        out["warmup"] = warm.summary()
        _line(console, warm)

        messages = MessageCount()

        async def closed_phases(saga_target: ClinicTarget, phases, prefix: str) -> None:
            for concurrency, duration in phases:
                name = f"{prefix} c={concurrency}"
                say(console, f"{name}: closed loop for {duration}s")
                phase = measured(meter, quiet, closed_loop(name, saga_target.saga, concurrency, duration))
                count = messages if prefix == "closed" and concurrency == MESSAGES_AT else None
                r = await counted(stack.monitor_port, count, phase)
                results.append(r)
                _line(console, r)

        await closed_phases(target, plan["closed"], "closed")
        out.setdefault("nats_messages", {})[f"system c={MESSAGES_AT}"] = messages.summary()
        capacity = results[-1].rate
        # The same closed loops for bookings with a doctor (a token of the doctor's day each).
        doctor_id = await add_doctor(stack.gateway_addr, stack.jwt_secret)
        doctor_target = ClinicTarget(stack.gateway_addr, stack.jwt_secret, doctor_id=doctor_id)
        await doctor_target.open()
        try:
            await closed_phases(doctor_target, plan["doctor_closed"], "doctor")
        finally:
            await doctor_target.close()
        # Half the reference's throughput (the target's load), half the closed-loop capacity just
        # measured (the latency of a system that keeps up), then fixed rates (overload).
        duration = plan["open"][0][1]
        levels = [
            (max(10, round(ref_rate * 0.5)), duration, rep.OPEN_HALF_REF),
            (max(10, round(capacity * 0.5)), duration, "open 50% cap"),
        ]
        levels += [(rate, duration, f"open {rate}/s") for rate, duration in plan["open"]]
        for rate, duration, name in levels:
            say(console, f"open loop {rate}/s for {duration}s (in-flight cap {MAX_IN_FLIGHT})")
            r = await measured(meter, quiet, open_loop(name, target.saga, rate, duration, MAX_IN_FLIGHT))
            results.append(r)
            _line(console, r)
        out["peak_rss_mb"]["system"] = meter.peak_rss_mb()
        stack.services.check_alive(stack.logs)
    finally:
        await target.close()
        await nc.close()
        say(console, "stopping the system")
        stack.stop()
    return results


async def run_reference(
    console: Console, plan: dict, data_dir: Path, started: list, out: dict
) -> list[Result]:
    ref = ReferenceStack(data_dir)
    started.append(ref)
    say(console, "starting the reference pipeline (own nats-server and valkey, 3 processes)")
    await ref.start()
    meter = CpuMeter(ref.pids())
    nc = await nats.connect(ref.nats_url, name="bench-monitor")
    js = nc.jetstream(timeout=5.0)
    target = ReferenceTarget(ref.addr)
    await target.open()
    results: list[Result] = []

    def quiet():
        return wait_quiet(js, REF_CONSUMERS)

    try:
        warmup = closed_loop("ref warm-up", target.saga, 8, plan["ref_warmup_s"])
        warm = await measured(meter, quiet, warmup)
        out["reference_warmup"] = warm.summary()
        for concurrency, duration in plan["ref_closed"]:
            say(console, f"reference closed loop c={concurrency} for {duration}s")
            r = await measured(
                meter, quiet, closed_loop(f"ref closed c={concurrency}", target.saga, concurrency, duration)
            )
            results.append(r)
            _line(console, r)
        out["peak_rss_mb"]["reference"] = meter.peak_rss_mb()
    finally:
        await target.close()
        await nc.close()
        say(console, "stopping the reference pipeline")
        ref.stop()
    return results


async def run_ab(
    console: Console, plan: dict, data_root: Path, started: list, tree: Path, out: dict
) -> list[Result]:
    """Issue 22's A/B: this tree's system and the baseline tree's, both up, closed loops alternating
    ours, baseline, ours, baseline… (c=64 then c=1, `ab_rounds` rounds) in the same minutes."""
    ours = Stack(data_root / "ab-ours")
    base = BaselineStack(tree, data_root / "ab-baseline")
    started += [ours, base]
    say(console, f"A/B: starting this tree's system and the baseline's from {tree} (its own .venv)")
    await ours.start()
    await base.start()
    sides = []
    try:
        for label, stack in (("ours", ours), ("baseline", base)):
            nc = await nats.connect(stack.ops_nats_url, name="bench-monitor")
            target = ClinicTarget(stack.gateway_addr, stack.jwt_secret)
            await target.open()
            js = nc.jetstream(timeout=5.0)
            sides.append((label, CpuMeter(stack.pids()), nc, target, js))
        ports = {"ours": ours.monitor_port, "baseline": base.monitor_port}
        messages = {label: MessageCount() for label in ports}
        results: list[Result] = []
        for label, meter, _nc, target, js in sides:
            say(console, f"A/B warm-up {label}: closed loop c=8 for {plan['ab_warmup_s']}s")
            await measured(
                meter,
                lambda js=js: wait_quiet(js, SYSTEM_CONSUMERS),
                closed_loop("warm-up", target.saga, 8, plan["ab_warmup_s"]),
            )
        for round_no in range(1, plan["ab_rounds"] + 1):
            for concurrency, duration in plan["ab_closed"]:
                for label, meter, _nc, target, js in sides:
                    name = f"{rep.AB_PREFIX[label]} c={concurrency} #{round_no}"
                    say(console, f"{name}: closed loop for {duration}s")
                    phase = measured(
                        meter,
                        lambda js=js: wait_quiet(js, SYSTEM_CONSUMERS),
                        closed_loop(name, target.saga, concurrency, duration),
                    )
                    count = messages[label] if concurrency == MESSAGES_AT else None
                    r = await counted(ports[label], count, phase)
                    results.append(r)
                    _line(console, r)
        for label, count in messages.items():
            out.setdefault("nats_messages", {})[f"A/B {label} c={MESSAGES_AT}"] = count.summary()
        ours.services.check_alive(ours.logs)
        return results
    finally:
        for _label, _meter, nc, target, _js in sides:
            await target.close()
            await nc.close()
        say(console, "A/B: stopping both systems")
        ours.stop()
        base.stop()


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


async def run(args, data_root: Path, started: list, console: Console) -> Path:
    plan = PLANS["quick" if args.quick else "full"]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out: dict = {
        "started_at_utc": stamp,
        "mode": "quick" if args.quick else "full",
        "plan": plan,
        "max_in_flight": MAX_IN_FLIGHT,
        "machine": machine_info(),
        "uptime_before": _uptime(),
        "loadavg_before": os.getloadavg(),
        "peak_rss_mb": {},
        "notes": [
            "Latency: CreateBooking sent (closed loop) or scheduled (open loop) -> final event on "
            "WatchBooking.",
            "Load generator runs on the same machine and shares its CPUs; see cpu 'loadgen'.",
            "cpu 'others' is CPU used by other processes on the machine during the phase (noise).",
            "Mix: 1 booking in 10 is high-value (discount eligible, quota in Redis); the others are not "
            "eligible.",
        ],
    }
    say(console, f"machine: {out['machine']['nproc']} CPUs, {out['machine']['cpu_model']}")
    say(console, f"before the run: {out['uptime_before']}")
    t0 = time.perf_counter()
    # The reference first: the system's open-loop target runs at half the reference's throughput.
    reference = await run_reference(console, plan, data_root / "reference", started, out)
    ref_rate = next((r.rate for r in reference if r.name == "ref closed c=64"), 0.0)
    system = await run_system(console, plan, data_root / "system", started, out, ref_rate)
    tree = baseline_tree()
    ab = await run_ab(console, plan, data_root, started, tree, out) if tree is not None else []
    out["baseline_tree"] = str(tree) if tree is not None else None
    out["ab"] = [r.summary() for r in ab]
    by_name = {r.name: r for r in (*system, *reference)}
    out["system"] = [r.summary() for r in system]
    out["reference"] = [r.summary() for r in reference]
    out["targets"] = rep.targets(by_name)
    out["targets_issue22"] = rep.targets_issue22(by_name, ab, tree)
    out["uptime_after"] = _uptime()
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    console.rule(f"clinic bench ({out['mode']}) {stamp}")
    rep.render(console, out, system, reference, ab)
    say(console, f"before: {out['uptime_before']}")
    say(console, f"after:  {out['uptime_after']}   (benchmark wall time {out['wall_s']}s)")
    out["report_text"] = console.export_text()
    path = Path(args.out) / f"{stamp}.json"
    rep.write_json(path, out)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2-3 s per phase (smoke test)")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data dir and logs")
    parser.add_argument("--out", default=str(RESULTS), help="where to write <UTC timestamp>.json")
    args = parser.parse_args()
    baseline_tree()  # a bad CLINIC_BENCH_BASELINE stops here, before anything starts
    console = Console(width=max(Console().width, 150), record=True)
    data_root = Path(tempfile.mkdtemp(prefix="clinic-bench-"))
    started: list = []
    ok = False

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        import uvloop

        path = uvloop.run(run(args, data_root, started, console))
        console.print(f"results: {path}", highlight=False)
        ok = True
        return 0
    except KeyboardInterrupt:
        console.print("interrupted: stopping everything", highlight=False)
        return 130
    finally:
        for stack in reversed(started):
            stack.stop()
        if ok and not args.keep_data:
            shutil.rmtree(data_root, ignore_errors=True)
        else:
            console.print(f"data and logs kept in {data_root}", highlight=False)


if __name__ == "__main__":
    sys.exit(main())
