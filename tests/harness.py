"""A real system for tests: nats-server and valkey on free ports, the services as subprocesses.

Nothing is faked: the services are started with `python -m <service>` exactly as in production,
configured only by environment variables.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import grpc
import redis.asyncio as aioredis

from clinic.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    booking_pb2,
    booking_pb2_grpc,
    common_pb2,
    doctor_pb2,
    doctor_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
    patient_pb2_grpc,
)
from clinic_common import tls
from clinic_common.config import ADDR_VARS, SERVICES
from clinic_tools import embedded, processes, starter
from clinic_tools.starter import Servers
from gateway.auth import mint
from notification_svc.domain import KINDS as TOLD_KINDS
from notification_svc.domain import REMINDER_PREFIX

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
TEST_CATALOG = Path(__file__).with_name("catalog.json")
IST = ZoneInfo("Asia/Kolkata")
SECRET = "test-secret-" + "x" * 24

FINAL = {
    common_pb2.BOOKING_STATUS_CONFIRMED,
    common_pb2.BOOKING_STATUS_REJECTED,
    common_pb2.BOOKING_STATUS_CANCELLED,
}
FINAL_EVENTS = (
    common_pb2.EVENT_TYPE_BOOKING_CONFIRMED,
    common_pb2.EVENT_TYPE_BOOKING_REJECTED,
    common_pb2.EVENT_TYPE_BOOKING_CANCELLED,
)


async def wait_for(check: Callable[[], Awaitable[T]], timeout_s: float = 15.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy, failing with `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def today_ist() -> date:
    return datetime.now(IST).date()


def future_date(days: int | None = None) -> str:
    """A unique-ish appointment date, so tests do not share capacity counters."""
    offset = days if days is not None else 1 + uuid.uuid4().int % 360
    return (today_ist() + timedelta(days=offset)).isoformat()


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class System:
    """`instances` copies of each service over `servers`; `env` overrides every service's defaults.

    Processes are named by module, and `module@2`, `module@3` ... for the extra instances; every
    gateway dials every instance of each backend.
    """

    servers: Servers
    env: dict[str, str] = field(default_factory=dict)
    services: tuple[str, ...] = SERVICES
    running: dict[str, processes.Process] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    instances: int = 1
    instance_ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for var in ADDR_VARS.values():
            self.ports.setdefault(var, embedded.free_port())
        for module in ADDR_VARS:
            self.instance_ports.setdefault(module, self.ports[ADDR_VARS[module]])
            for i in range(2, self.instances + 1):
                self.instance_ports.setdefault(f"{module}@{i}", embedded.free_port())

    @property
    def names(self) -> list[str]:
        return [n for m in self.services for n in [m, *(f"{m}@{i}" for i in range(2, self.instances + 1))]]

    @property
    def gateway_addr(self) -> str:
        return self.addr_of("gateway")

    def addr_of(self, name: str) -> str:
        return f"127.0.0.1:{self.instance_ports[name]}"

    def service_env(self, name: str) -> dict[str, str]:
        module = starter.module_of(name)
        # the gateway (and discount_svc) dial every instance; each instance listens on its own
        addrs = {
            backend: ",".join(self.addr_of(n) for n in self.names if n.partition("@")[0] == backend)
            for backend in ADDR_VARS
        }
        addrs[module] = self.addr_of(name)
        return self.servers.service_env(
            module,
            os.environ,
            addrs=addrs,
            metrics_addr=f"127.0.0.1:{self.metrics_ports.setdefault(name, embedded.free_port())}",
            overrides={
                "CLINIC_CATALOG": str(TEST_CATALOG),
                "CLINIC_AUTH": "jwt",
                "CLINIC_JWT_SECRET": SECRET,
                "CLINIC_LOG_LEVEL": "info",
                "PYTHONPATH": str(ROOT),
                **tls.ensure_dev_pki(self.servers.data_dir),  # internal mutual TLS, as in production
                **self.env,
            },
        )

    @property
    def procs(self) -> dict[str, subprocess.Popen]:
        return {name: proc.popen for name, proc in self.running.items()}

    def start(self, only: tuple[str, ...] | None = None) -> System:
        logs = self.servers.data_dir / "logs"
        names = only or tuple(self.names)
        procs = {name: starter.service_process(name, self.service_env(name), logs, ROOT) for name in names}
        self.running.update(procs)
        starter.start_services(procs, {name: self.addr_of(name) for name in names})
        return self

    def wait_healthy(self, module: str, timeout_s: float = 30.0) -> None:
        starter.wait_healthy(module, self.running[module], self.addr_of(module), timeout_s)

    def log_tail(self, module: str, chars: int = 3000) -> str:
        path = self.servers.data_dir / "logs" / f"{module}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, modules: tuple[str, ...] | None = None, sig: int = signal.SIGTERM) -> None:
        chosen = [self.running[m] for m in modules or tuple(self.running) if m in self.running]
        if sig == signal.SIGTERM and len(chosen) > 1:  # all at once: each shuts down cleanly, in parallel
            processes.stop_all([p.popen for p in chosen if p.popen], 15)
            return
        for proc in chosen:
            proc.stop(15, sig)

    def kill(self, module: str) -> None:
        self.stop((module,), sig=signal.SIGKILL)


class Client:
    """Generated stubs over one channel to the gateway, with tokens for any caller."""

    def __init__(self, addr: str) -> None:
        self.channel = grpc.aio.insecure_channel(addr)
        self.bookings = booking_pb2_grpc.BookingServiceStub(self.channel)
        self.notifications = notification_pb2_grpc.NotificationServiceStub(self.channel)
        self.admin_api = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.patients = patient_pb2_grpc.PatientServiceStub(self.channel)
        self.doctors = doctor_pb2_grpc.DoctorServiceStub(self.channel)

    @staticmethod
    def auth(sub: str = "operator", role: str = "admin") -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {mint(SECRET, sub, role)}")]

    async def close(self) -> None:
        await self.channel.close()

    async def create(self, patient: common_pb2.Patient, service_ids, **kw) -> common_pb2.Booking:
        req = booking_pb2.CreateBookingRequest(patient=patient, service_ids=service_ids, **kw)
        return (await self.bookings.CreateBooking(req, metadata=self.auth(), timeout=10)).booking

    async def get(self, booking_id: str) -> common_pb2.Booking:
        req = booking_pb2.GetBookingRequest(booking_id=booking_id)
        return (await self.bookings.GetBooking(req, metadata=self.auth(), timeout=10)).booking

    async def cancel(self, booking_id: str, reason: str = "") -> common_pb2.Booking:
        req = booking_pb2.CancelBookingRequest(booking_id=booking_id, reason=reason)
        return (await self.bookings.CancelBooking(req, metadata=self.auth(), timeout=10)).booking

    async def accept_offer(self, booking_id: str, metadata=None) -> common_pb2.Booking:
        req = booking_pb2.AcceptOfferRequest(booking_id=booking_id)
        return (await self.bookings.AcceptOffer(req, metadata=metadata or self.auth(), timeout=10)).booking

    async def doctor(self, service_ids=("gen-consult",), **kw) -> doctor_pb2.Doctor:
        """A new doctor with a unique code (defaults: capacity 10, 09:00-17:00, 15-minute slots)."""
        req = doctor_pb2.CreateDoctorRequest(
            code=uid("DR"), name="Dr Test", specialty="general", service_ids=list(service_ids), **kw
        )
        return (await self.doctors.CreateDoctor(req, metadata=self.auth(), timeout=10)).doctor

    async def doctor_day(self, doctor_id: str, day: str) -> doctor_pb2.DoctorDay:
        req = doctor_pb2.GetDoctorDayRequest(doctor_id=doctor_id, date=day)
        return (await self.doctors.GetDoctorDay(req, metadata=self.auth(), timeout=10)).day

    async def quota(self, day: str = "") -> admin_pb2.Quota:
        return (
            await self.admin_api.GetQuota(admin_pb2.GetQuotaRequest(date=day), metadata=self.auth())
        ).quota

    async def watch(self, booking_id: str, timeout_s: float = 20.0) -> list[common_pb2.BookingEvent]:
        req = notification_pb2.WatchBookingRequest(booking_id=booking_id)
        stream = self.notifications.WatchBooking(req, metadata=self.auth(), timeout=timeout_s)
        return [item.event async for item in stream]

    async def deliveries(self, booking_id: str, metadata=None) -> list[notification_pb2.Delivery]:
        req = notification_pb2.ListDeliveriesRequest(booking_id=booking_id)
        answer = await self.notifications.ListDeliveries(req, metadata=metadata or self.auth(), timeout=10)
        return list(answer.deliveries)

    async def fully_notified(self, b: common_pb2.Booking) -> bool:
        """notification_svc told the patient (in app) about every event it tells of."""
        return app_deliveries(await self.deliveries(b.id)) >= told_count(b)

    async def settled(
        self, booking_id: str, *, notified: bool = True, timeout_s: float = 20.0
    ) -> common_pb2.Booking:
        """The booking once final and (by default) its patient told (notification_svc's deliveries)."""

        async def check():
            b = await self.get(booking_id)
            if b.status not in FINAL:
                return None
            if notified and not await self.fully_notified(b):
                return None
            if b.status != common_pb2.BOOKING_STATUS_CONFIRMED:
                kinds = {e.type for e in b.history}
                if b.discount.outcome == common_pb2.DISCOUNT_OUTCOME_APPLIED:
                    return None  # the quota unit is still on its way back
                if (
                    common_pb2.EVENT_TYPE_PLACES_RESERVED in kinds
                    and common_pb2.EVENT_TYPE_PLACES_RELEASED not in kinds
                ):
                    return None  # the places are still on their way back
            return b

        return await wait_for(check, timeout_s, f"booking {booking_id} to settle")


def told_count(b: common_pb2.Booking) -> int:
    """How many of the booking's events the patient is told about (outcomes, offers, moves ...)."""
    return sum(1 for e in b.history if e.type in TOLD_KINDS)


def app_deliveries(deliveries) -> int:
    """The in-app messages notification_svc recorded as sent (one per told event; reminders are
    not told events and are not counted)."""
    return sum(
        1
        for d in deliveries
        if d.channel == "app"
        and d.status == notification_pb2.DELIVERY_STATUS_SENT
        and not d.kind.startswith(REMINDER_PREFIX)
    )


def patient(
    pid: str | None = None,
    gender: int = common_pb2.GENDER_MALE,
    dob: str = "1985-03-10",
    name: str = "Test Patient",
) -> common_pb2.Patient:
    return common_pb2.Patient(id=pid or uid("p"), name=name, gender=gender, date_of_birth=dob)


def birthday_patient(pid: str | None = None) -> common_pb2.Patient:
    today = today_ist()
    dob = today.replace(year=1990) if not (today.month == 2 and today.day == 29) else date(1992, 2, 29)
    return patient(pid, common_pb2.GENDER_FEMALE, dob.isoformat(), name="Asha Rao")


async def redis_client(servers: Servers) -> aioredis.Redis:
    return aioredis.Redis.from_url(servers.redis_url)
