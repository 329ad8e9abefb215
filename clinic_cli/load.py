"""`clinic load`: N bookings at a concurrency, with a progress bar, then outcomes and latencies."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import date, timedelta

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from clinic.v1 import booking_pb2, notification_pb2
from clinic.v1 import common_pb2 as c
from clinic_tools.stats import percentile

from .client import Api
from .show import console, status


async def run(api: Api, total: int, concurrency: int, service: str) -> int:
    outcomes: Counter = Counter()
    latencies: list[float] = []
    errors: Counter = Counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def one(i: int) -> None:
        started = time.perf_counter()
        req = booking_pb2.CreateBookingRequest(
            patient=c.Patient(
                id=f"load-{uuid.uuid4().hex[:12]}",
                name="Load",
                gender=c.GENDER_OTHER,
                date_of_birth="1980-01-01",
            ),
            service_ids=[service],
            appointment_date=(date.today() + timedelta(days=30 + i % 300)).isoformat(),
        )
        booking = (await api.bookings.CreateBooking(req, metadata=api.md, timeout=30)).booking
        last = None
        watch = notification_pb2.WatchBookingRequest(booking_id=booking.id)
        async for item in api.notifications.WatchBooking(watch, metadata=api.md, timeout=60):
            last = item.event
        latencies.append(time.perf_counter() - started)
        outcomes[status(last.status) if last else "UNKNOWN"] += 1

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console(),
    ) as progress:
        task = progress.add_task("bookings", total=total)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                try:
                    await one(i)
                except Exception as exc:  # counted and shown, the run goes on
                    errors[type(exc).__name__ + ": " + str(getattr(exc, "code", lambda: "")())] += 1
                progress.advance(task)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started

    table = Table("figure", "value")
    table.add_row("bookings", str(total))
    table.add_row("concurrency", str(concurrency))
    table.add_row("throughput", f"{len(latencies) / elapsed:.1f} sagas/s")
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        if latencies:
            table.add_row(name, f"{percentile(latencies, p) * 1000:.1f} ms")
    for outcome, n in outcomes.most_common():
        table.add_row(f"outcome {outcome}", str(n))
    for error, n in errors.most_common():
        table.add_row(f"error {error}", str(n))
    console().print(table)
    return 1 if errors else 0
