"""python -m bench.timeline [--sagas 200]: where one booking's milliseconds go, at one booking at a time.

Starts the system as `make bench` does and books one at a time through the gateway, while a
monitoring client (the operators' NATS user) timestamps every saga message and booking event as
nats-server hands it out. Prints, per step, the median time from `CreateBooking` sent, and the
client's own marks (the answer to CreateBooking, the final event on WatchBooking).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import nats

from clinic.v1 import common_pb2

from .launcher import Stack
from .load import ClinicTarget

STEPS = ("saga.>", "booking.events.>")


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    stack = Stack(data_dir)
    await stack.start()
    try:
        nc = await nats.connect(stack.ops_nats_url, name="bench-timeline")
        seen: dict[str, list[tuple[float, str]]] = defaultdict(list)

        async def on_msg(msg) -> None:
            now = time.perf_counter()
            booking_id = msg.subject.rpartition(".")[2]
            step = msg.subject.rpartition(".")[0]
            if step == "booking.events":
                event = common_pb2.BookingEvent.FromString(msg.data)
                step = "event " + common_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_")
            seen[booking_id].append((now, step))

        for subject in STEPS:
            await nc.subscribe(subject, cb=on_msg)
        target = ClinicTarget(stack.gateway_addr, stack.jwt_secret)
        await target.open()
        for _ in range(20):  # warm-up
            await target.saga()
        marks: list[dict[str, float]] = []
        for _ in range(args.sagas):
            t0 = time.perf_counter()
            booking_id, answered, final = await target.timed_saga()
            await asyncio.sleep(0.02)  # the tail (the notification receipt) lands before the next
            steps = {"CreateBooking answered": answered - t0, "final event on WatchBooking": final - t0}
            for at, step in seen.pop(booking_id, []):
                steps.setdefault(step, at - t0)
            marks.append(steps)
        await target.close()
        await nc.close()
    finally:
        stack.stop()
    order: dict[str, list[float]] = defaultdict(list)
    for steps in marks:
        for step, at in steps.items():
            order[step].append(at * 1000)
    print(f"{args.sagas} bookings, one at a time; median ms after CreateBooking was sent:")
    for step, values in sorted(order.items(), key=lambda kv: statistics.median(kv[1])):
        print(f"  {statistics.median(values):7.2f}  {step}  (seen in {len(values)})")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.timeline", description=__doc__)
    parser.add_argument("--sagas", type=int, default=200)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="clinic-timeline-"))
    import uvloop

    try:
        uvloop.run(run(args, data_dir))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
