"""python -m bench.profile [--concurrency 64] [--seconds 15] [--doctor]: where a saga's CPU goes.

Starts the system as `make bench` does, drives a closed loop through the gateway and samples every
Python service with py-spy (`pip install py-spy`; not a dependency of the project) for the same
window. Prints, per service, its CPU per saga and the functions with the most samples (own time and
time including callees), and keeps the collapsed stacks and flame graphs in --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections import Counter
from pathlib import Path

from .launcher import Stack
from .load import ClinicTarget, closed_loop
from .procstat import CpuMeter, syscalls

PY_SERVICES = ("booking_svc", "schedule_svc", "discount_svc", "notification_svc")


def nats_messages(monitor_port: int) -> dict[str, tuple[int, int]]:
    """Messages each client sent to / received from nats-server so far, by connection name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/connz?limit=1024", timeout=5) as r:
        connz = json.load(r)
    out: dict[str, tuple[int, int]] = {}
    for c in connz.get("connections", []):
        name = c.get("name") or "?"
        sent, got = out.get(name, (0, 0))
        out[name] = (sent + c.get("in_msgs", 0), got + c.get("out_msgs", 0))
    return out


def messages_per_saga(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], sagas: int, skip: str = "bench-"
) -> dict[str, tuple[float, float]]:
    """Per connection name, the messages it sent to / received from nats-server between two /connz
    snapshots, per saga; names starting with `skip` (the benchmark's own clients) are left out, and so
    are connections that did nothing."""
    sagas = max(sagas, 1)
    rows: dict[str, tuple[float, float]] = {}
    for name, (sent, got) in sorted(after.items()):
        sent0, got0 = before.get(name, (0, 0))
        if name.startswith(skip) or not (sent - sent0 or got - got0):
            continue
        rows[name] = ((sent - sent0) / sagas, (got - got0) / sagas)
    return rows


def messages_total(rows: dict[str, tuple[float, float]]) -> tuple[float, float]:
    return sum(a for a, _ in rows.values()), sum(b for _, b in rows.values())


def messages_line(rows: dict[str, tuple[float, float]], label: str = "") -> str:
    sent, got = messages_total(rows)
    return (
        f"NATS messages per saga{', ' + label if label else ''} (client -> server, server -> client): "
        + ", ".join(f"{n} {a:.1f}/{b:.1f}" for n, (a, b) in rows.items())
        + f"; all {sent:.1f}/{got:.1f}"
    )


def syscalls_line(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], sagas: int) -> str:
    """Read and write system calls per saga per process (a socket write on loopback also costs the
    writer the receiver's TCP work: the count of writes is what batching and coalescing cut)."""
    rows = {
        name: ((after[name][0] - r0) / sagas, (after[name][1] - w0) / sagas)
        for name, (r0, w0) in sorted(before.items())
    }
    reads, writes = sum(r for r, _ in rows.values()), sum(w for _, w in rows.values())
    return (
        "system calls per saga (read / write): "
        + ", ".join(f"{n} {r:.1f}/{w:.1f}" for n, (r, w) in rows.items())
        + f"; all {reads:.1f}/{writes:.1f}"
    )


def summarise(collapsed: Path, top: int) -> list[str]:
    """Own and inclusive sample shares per function from py-spy's collapsed (raw) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0] + ")" for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return ["  no samples"]
    lines = [f"  {total} samples; own time:"]
    lines += [f"    {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("  including callees:")
    lines += [f"    {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return lines


async def run(args: argparse.Namespace, data_dir: Path, out: Path) -> None:
    stack = Stack(data_dir)
    await stack.start()
    try:
        pids = stack.pids()
        target = ClinicTarget(stack.gateway_addr, stack.jwt_secret)
        await target.open()
        await closed_loop("warm-up", target.saga, 8, 3.0)
        meter = CpuMeter(pids)
        spies = {}
        for name in PY_SERVICES if args.spy else ():
            spies[name] = await asyncio.create_subprocess_exec(
                *("py-spy", "record", "--pid", str(pids[name]), "--duration", str(args.seconds)),
                *("--rate", "200", "--format", "raw", "--nonblocking", "--output", str(out / f"{name}.txt")),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        before = meter.snapshot()
        msgs_before = nats_messages(stack.monitor_port)
        calls_before = {name: syscalls(pid) for name, pid in pids.items()}
        result = await closed_loop("profiled", target.saga, args.concurrency, args.seconds)
        cpu = meter.delta(before, meter.snapshot())
        calls = {name: syscalls(pid) for name, pid in pids.items()}
        msgs_after = nats_messages(stack.monitor_port)
        for spy in spies.values():
            await spy.wait()
        await target.close()
    finally:
        stack.stop()
    sagas = max(result.completed, 1)
    print(
        f"closed loop c={args.concurrency} for {args.seconds}s: {result.rate:,.0f} sagas/s, "
        f"p50 {result.pct(50):.2f} ms, p99 {result.pct(99):.2f} ms"
    )
    print("CPU ms per saga: " + ", ".join(f"{k} {v / sagas:.2f}" for k, v in sorted(cpu.items())))
    print(messages_line(messages_per_saga(msgs_before, msgs_after, sagas)))
    print(syscalls_line(calls_before, calls, sagas))
    for name in PY_SERVICES if args.spy else ():
        print(f"\n{name}:")
        path = out / f"{name}.txt"
        print("\n".join(summarise(path, args.top) if path.exists() else ["  py-spy wrote nothing"]))
    print(f"\ncollapsed stacks in {out}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", default="")
    parser.add_argument("--no-spy", dest="spy", action="store_false", help="measure CPU per saga only")
    args = parser.parse_args()
    if args.spy and shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    out = Path(args.out or tempfile.mkdtemp(prefix="clinic-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="clinic-profile-data-"))
    import uvloop

    try:
        uvloop.run(run(args, data_dir, out))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
