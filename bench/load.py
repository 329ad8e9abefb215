"""Load generation: closed loop (N callers back to back) and open loop (a fixed arrival timetable).

A *target* is anything with `async saga() -> str` (the final status) that raises
`grpc.aio.AioRpcError` on failure. Latency is from the CreateBooking send (closed loop) or from the
scheduled send time (open loop: queueing delay is counted, no coordinated omission) to the final
event received on the watch stream.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import grpc

from clinic.v1 import (
    booking_pb2,
    booking_pb2_grpc,
    common_pb2,
    doctor_pb2,
    doctor_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
)
from clinic_tools.stats import percentile
from gateway.auth import mint

from .launcher import BASIC, PREMIUM

CALL_TIMEOUT_S = 60.0
# One TCP connection per channel, and many channels, as many patients' apps would have. (Calls that fail
# at once with CANCELLED under overload are the server shedding them: grpc-core drops calls the Python
# event loop has not picked up once more than grpc.server.max_pending_requests, 1000, are waiting.)
CHANNELS = 16
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


@dataclass
class Result:
    name: str
    kind: str  # "closed" | "open"
    duration_s: float  # from the first send to the last completion
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    concurrency: int | None = None
    offered_rate: float | None = None
    scheduled: int = 0
    dropped: int = 0
    max_in_flight: int = 0
    max_send_lag_ms: float = 0.0
    error_samples: list[str] = field(default_factory=list)
    in_window: int | None = None  # open loop: completions inside the arrival window
    drain_s: float = 0.0  # open loop: time after the window until the last completion
    cpu_ms: dict[str, float] = field(default_factory=dict)
    loadavg_before: tuple[float, float, float] | None = None
    loadavg_after: tuple[float, float, float] | None = None

    def error(self, err: grpc.aio.AioRpcError) -> None:
        self.errors[err.code().name] += 1
        if len(self.error_samples) < 5:
            notes = "; ".join(getattr(err, "__notes__", ()))
            self.error_samples.append(f"{err.code().name}: {err.details()} ({notes})")

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)

    @property
    def rate(self) -> float:
        """Closed loop: sagas/s over the run. Open loop: every completion over the time from the first
        arrival to the last completion (a backlog drained after the arrivals stopped still took time:
        with every saga progressing at once, few finish inside the window under overload)."""
        span = self.duration_s + self.drain_s
        return self.completed / span if span > 0 else 0.0

    def pct(self, p: float) -> float | None:
        return percentile(self.latencies_ms, p)

    def cpu_per_saga(self) -> dict[str, float]:
        n = self.completed or 1
        return {k: v / n for k, v in self.cpu_ms.items() if k != "machine_capacity"}

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "concurrency": self.concurrency,
            "offered_rate": self.offered_rate,
            "completed": self.completed,
            "duration_s": round(self.duration_s, 3),
            "sagas_per_s": round(self.rate, 1),
            "p50_ms": _r(self.pct(50)),
            "p90_ms": _r(self.pct(90)),
            "p99_ms": _r(self.pct(99)),
            "max_ms": _r(max(self.latencies_ms) if self.latencies_ms else None),
            "mean_ms": _r(sum(self.latencies_ms) / len(self.latencies_ms) if self.latencies_ms else None),
            "errors": dict(self.errors),
            "error_samples": self.error_samples,
            "final_statuses": dict(self.statuses),
            "scheduled": self.scheduled,
            "dropped": self.dropped,
            "max_in_flight": self.max_in_flight,
            "max_send_lag_ms": round(self.max_send_lag_ms, 2),
            "completed_in_window": self.in_window,
            "drain_after_window_s": round(self.drain_s, 2),
            "cpu_ms_total": {k: round(v, 1) for k, v in self.cpu_ms.items()},
            "cpu_ms_per_saga": {k: round(v, 3) for k, v in self.cpu_per_saga().items()},
            "loadavg_before": self.loadavg_before,
            "loadavg_after": self.loadavg_after,
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


Target = Callable[[], Awaitable[str]]


async def closed_loop(name: str, saga: Target, concurrency: int, duration_s: float) -> Result:
    """`concurrency` callers, each starting its next saga when the previous one ended."""
    result = Result(name, "closed", 0.0, concurrency=concurrency)
    start = time.perf_counter()
    end = start + duration_s

    async def caller() -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            try:
                status = await saga()
            except grpc.aio.AioRpcError as err:
                result.error(err)
                await asyncio.sleep(0.01)  # do not spin on a failing system
                continue
            result.latencies_ms.append((time.perf_counter() - t0) * 1000)
            result.statuses[status] += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    result.duration_s = time.perf_counter() - start
    result.scheduled = result.completed + sum(result.errors.values())
    return result


async def open_loop(
    name: str, saga: Target, rate: float, duration_s: float, max_in_flight: int, drain_s: float = 90.0
) -> Result:
    """Arrivals every 1/rate s on a fixed timetable; a saga's latency counts from its scheduled time.

    Arrivals that find `max_in_flight` sagas open are dropped (counted), not delayed.
    """
    result = Result(name, "open", 0.0, offered_rate=rate)
    total = int(rate * duration_s)
    in_flight: set[asyncio.Task] = set()
    done_at: list[float] = []
    start = time.perf_counter() + 0.02

    async def one(scheduled: float) -> None:
        try:
            status = await saga()
        except grpc.aio.AioRpcError as err:
            result.error(err)
            return
        now = time.perf_counter()
        done_at.append(now)
        result.latencies_ms.append((now - scheduled) * 1000)
        result.statuses[status] += 1

    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        result.max_send_lag_ms = max(result.max_send_lag_ms, (time.perf_counter() - scheduled) * 1000)
        result.scheduled += 1
        if len(in_flight) >= max_in_flight:
            result.dropped += 1
            continue
        task = asyncio.create_task(one(scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        result.max_in_flight = max(result.max_in_flight, len(in_flight))
    if in_flight:
        _, pending = await asyncio.wait(set(in_flight), timeout=drain_s)
        for task in pending:
            task.cancel()
        if pending:
            result.errors["NOT_DONE_AFTER_DRAIN"] += len(pending)
    window_end = start + duration_s
    result.in_window = sum(1 for t in done_at if t <= window_end)
    result.duration_s = duration_s
    result.drain_s = max(0.0, max(done_at, default=window_end) - window_end)
    return result


class ClinicTarget:
    """Books through the gateway with the generated stubs, then watches the booking to its end.

    Callers are patients with their own tokens (minted up front), one booking at a time each, so the
    gateway's per-patient rate limit and watch cap are never the bottleneck. One booking in
    `eligible_every` is a high-value one (discount eligible: takes a quota unit in Redis).
    """

    def __init__(
        self,
        addr: str,
        secret: str,
        *,
        patients: int = 4096,
        channels: int = CHANNELS,
        eligible_every: int = 10,
        doctor_id: str = "",
    ) -> None:
        self._addr = addr
        # With a doctor: each booking takes the lowest free token of the doctor's day (a day holds
        # DOCTOR_CAPACITY; the bookings fill one day after another, from tomorrow).
        self._doctor_id = doctor_id
        self._first_day = date.today() + timedelta(days=1)
        self._channel_count = channels
        self._eligible_every = eligible_every
        self._run = uuid.uuid4().hex[:8]
        self._counter = itertools.count()
        self._patients = []
        dob = _not_a_birthday()
        for i in range(patients):
            pid = f"bench-{self._run}-{i}"
            patient = common_pb2.Patient(
                id=pid,
                name="Bench Patient",
                gender=(common_pb2.GENDER_MALE, common_pb2.GENDER_FEMALE)[i % 2],
                date_of_birth=dob,  # never today: eligibility comes only from the high-value bookings
            )
            token = mint(secret, pid, "patient")
            self._patients.append((patient, (("authorization", f"Bearer {token}"),)))
        self._channels: list[grpc.aio.Channel] = []
        self._stubs: list[tuple[object, object]] = []

    async def open(self) -> None:
        for _ in range(self._channel_count):
            channel = grpc.aio.insecure_channel(self._addr, options=CHANNEL_OPTIONS)
            await channel.channel_ready()
            self._channels.append(channel)
            self._stubs.append(
                (
                    booking_pb2_grpc.BookingServiceStub(channel),
                    notification_pb2_grpc.NotificationServiceStub(channel),
                )
            )

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def saga(self) -> str:
        return (await self._saga())[0]

    async def timed_saga(self) -> tuple[str, float, float]:
        """(booking id, when CreateBooking answered, when the final event arrived): perf_counter."""
        _, booking_id, answered, final = await self._saga()
        return booking_id, answered, final

    async def _saga(self) -> tuple[str, str, float, float]:
        i = next(self._counter)
        patient, metadata = self._patients[i % len(self._patients)]
        bookings, notifications = self._stubs[i % len(self._stubs)]
        request = booking_pb2.CreateBookingRequest(
            patient=patient,
            service_ids=[PREMIUM if i % self._eligible_every == 0 else BASIC],
            request_id=f"{self._run}-{i}",
        )
        if self._doctor_id:
            request.doctor_id = self._doctor_id
            day = self._first_day + timedelta(days=(i // DOCTOR_CAPACITY) % 360)
            request.appointment_date = day.isoformat()
        t0 = time.perf_counter()
        try:
            created = await bookings.CreateBooking(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            err.add_note(f"CreateBooking after {time.perf_counter() - t0:.1f}s")
            raise
        answered = time.perf_counter()
        watch = notification_pb2.WatchBookingRequest(booking_id=created.booking.id)
        status = 0
        events = 0
        try:
            async for item in notifications.WatchBooking(watch, metadata=metadata, timeout=CALL_TIMEOUT_S):
                status = item.event.status
                events += 1
        except grpc.aio.AioRpcError as err:
            err.add_note(f"WatchBooking after {time.perf_counter() - t0:.1f}s, {events} events")
            raise
        final = time.perf_counter()
        status_name = common_pb2.BookingStatus.Name(status).removeprefix("BOOKING_STATUS_")
        return status_name, created.booking.id, answered, final


DOCTOR_CAPACITY = 500  # the most a doctor's day may hold (schedule_svc)


async def add_doctor(addr: str, secret: str) -> str:
    """A doctor who performs both bench services, with the largest day allowed; its id."""
    metadata = (("authorization", f"Bearer {mint(secret, 'bench-admin', 'admin')}"),)
    async with grpc.aio.insecure_channel(addr, options=CHANNEL_OPTIONS) as channel:
        created = await doctor_pb2_grpc.DoctorServiceStub(channel).CreateDoctor(
            doctor_pb2.CreateDoctorRequest(
                code=f"bench-{uuid.uuid4().hex[:8]}",
                name="Dr Bench",
                specialty="General medicine",
                service_ids=[BASIC, PREMIUM],
                daily_capacity=DOCTOR_CAPACITY,
            ),
            metadata=metadata,
            timeout=CALL_TIMEOUT_S,
        )
    return created.doctor.id


def _not_a_birthday() -> str:
    today = date.today()
    for candidate in (date(1980, 6, 15), date(1980, 12, 15)):
        if abs((candidate.replace(year=today.year) - today).days) > 3:
            return candidate.isoformat()
    return "1980-03-15"
