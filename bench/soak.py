"""`make soak`: steady load for a while, sampling each process's resident memory.

    python -m bench.soak [--minutes 10] [--rate 60]

Open loop at a rate the system sustains (default 60/s, below the ~140/s capacity), RSS sampled
every 30 s. The services keep bounded caches (10,000 booking records, 20,000 bookings' events) that
fill during the first minutes, so growth is judged over the second half of the run: a service is
"flat" when its RSS grew less than 10% from the midpoint to the end. nats-server and valkey store
every booking, so their growth is shown but expected.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc
import uvloop
from rich.console import Console
from rich.table import Table

from .launcher import Stack
from .load import ClinicTarget
from .procstat import status_kb

FLAT = 0.10


async def soak(minutes: float, rate: float, sample_s: float) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="clinic-soak-"))
    stack = Stack(data_dir)
    console = Console(highlight=False)
    try:
        await stack.start()
        target = ClinicTarget(stack.gateway_addr, stack.jwt_secret)
        await target.open()
        pids = stack.pids()
        samples: list[tuple[float, dict[str, float]]] = []
        errors = 0
        error_kinds: Counter = Counter()
        done = 0
        in_flight: set[asyncio.Task] = set()
        started = time.monotonic()
        end = started + minutes * 60
        next_sample = started
        i = 0
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_sample:
                samples.append(
                    (now - started, {n: (status_kb(p, "VmRSS") or 0) / 1024 for n, p in pids.items()})
                )
                console.print(
                    f"{now - started:6.0f}s  sagas {done}  errors {errors}  in flight {len(in_flight)}  "
                    + "  ".join(f"{n} {mb:.0f}MB" for n, mb in samples[-1][1].items())
                )
                next_sample += sample_s
            due = started + i / rate
            if due > now:
                await asyncio.sleep(due - now)
            i += 1

            async def one() -> None:
                nonlocal done, errors
                try:
                    await target.saga()
                    done += 1
                except Exception as exc:
                    errors += 1
                    error_kinds[_kind(exc)] += 1

            task = asyncio.create_task(one())
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight, return_exceptions=True)
        samples.append(
            (time.monotonic() - started, {n: (status_kb(p, "VmRSS") or 0) / 1024 for n, p in pids.items()})
        )
        await target.close()
        if error_kinds:
            console.print(f"errors by kind: {dict(error_kinds.most_common())}")
        return report(console, samples, done, errors)
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


STORES_DATA = {"nats-server", "valkey"}


def _kind(exc: Exception) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        notes = "; ".join(getattr(exc, "__notes__", []))
        return f"{exc.code().name}: {(exc.details() or '')[:80]} ({notes})"
    return repr(exc)[:100]


def report(console: Console, samples, done: int, errors: int) -> int:
    last = samples[-1]
    midpoint = min(samples, key=lambda s: abs(s[0] - last[0] / 2))
    table = Table(
        "process", "RSS start MB", f"at {midpoint[0]:.0f}s MB", "at end MB", "growth, 2nd half", "flat"
    )
    flat_all = True
    for name, mid_mb in midpoint[1].items():
        end_mb = last[1].get(name, 0.0)
        growth = (end_mb - mid_mb) / mid_mb if mid_mb else 0.0
        if name in STORES_DATA:
            verdict = "stores data"
        else:
            verdict = "yes" if growth < FLAT else "NO"
            flat_all &= growth < FLAT
        table.add_row(
            name, f"{samples[0][1][name]:.1f}", f"{mid_mb:.1f}", f"{end_mb:.1f}", f"{growth:+.1%}", verdict
        )
    console.print(table)
    console.print(f"sagas {done}, errors {errors}, {last[0]:.0f}s")
    return 0 if flat_all and not errors else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=60.0, help="bookings per second (open loop)")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    args = parser.parse_args()
    return uvloop.run(soak(args.minutes, args.rate, args.sample))


if __name__ == "__main__":
    raise SystemExit(main())
