"""`clinic scenarios`: the seed scenarios, PASS/FAIL each.

By default they run against a throwaway system of their own (clinic_cli.sandbox), so a running
system is never touched. With `--live` they run against the gateway the CLI points at, after saying
what they will change. Either way every booking they make is cancelled at the end, which gives its
quota unit and places back, so a second run finds what the first found.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import grpc

from clinic.v1 import (
    admin_pb2,
    booking_pb2,
    doctor_pb2,
    frontdesk_pb2,
    frontdesk_pb2_grpc,
    notification_pb2,
    patient_pb2,
)
from clinic.v1 import common_pb2 as c
from clinic_common.money import format_minor

from .client import Api
from .show import console

FINAL = {c.BOOKING_STATUS_CONFIRMED, c.BOOKING_STATUS_REJECTED, c.BOOKING_STATUS_CANCELLED}
HIGH_VALUE_MINOR = 100_000  # HIGH_VALUE_THRESHOLD's default, 1000.00


class Failed(Exception):
    pass


def summary(b: c.Booking) -> str:
    """A booking's outcome in names, never enum numbers: 'REJECTED (QUOTA_EXHAUSTED), discount ...'."""
    text = c.BookingStatus.Name(b.status).removeprefix("BOOKING_STATUS_")
    if b.rejection_reason:
        text += f" ({c.RejectionReason.Name(b.rejection_reason).removeprefix('REJECTION_REASON_')})"
    if b.discount.outcome:
        text += f", discount {c.DiscountOutcome.Name(b.discount.outcome).removeprefix('DISCOUNT_OUTCOME_')}"
    return text


@dataclass
class Run:
    """The API and every booking this run made (cancelled at the end)."""

    api: Api
    tz: ZoneInfo
    made: list[str] = field(default_factory=list)

    def patient(self, pid: str | None = None, gender=c.GENDER_MALE, dob="1985-03-10") -> c.Patient:
        return c.Patient(
            id=pid or f"scenario-{uuid.uuid4().hex[:10]}", name="Scenario", gender=gender, date_of_birth=dob
        )

    async def create(self, patient: c.Patient, service_ids, day: str = "", **kw) -> c.Booking:
        """CreateBooking without waiting for an outcome (a waitlisted booking has none yet)."""
        req = booking_pb2.CreateBookingRequest(
            patient=patient, service_ids=service_ids, appointment_date=day, **kw
        )
        booking = (await self.api.bookings.CreateBooking(req, metadata=self.api.md, timeout=10)).booking
        self.made.append(booking.id)
        return booking

    async def book(self, patient: c.Patient, service_ids, day: str = "", **kw) -> c.Booking:
        req = booking_pb2.CreateBookingRequest(
            patient=patient, service_ids=service_ids, appointment_date=day, **kw
        )
        booking = (await self.api.bookings.CreateBooking(req, metadata=self.api.md, timeout=10)).booking
        self.made.append(booking.id)
        return await self.outcome(booking.id)

    async def get(self, booking_id: str) -> c.Booking:
        req = booking_pb2.GetBookingRequest(booking_id=booking_id)
        return (await self.api.bookings.GetBooking(req, metadata=self.api.md, timeout=10)).booking

    async def outcome(self, booking_id: str) -> c.Booking:
        req = notification_pb2.WatchBookingRequest(booking_id=booking_id)
        async for _ in self.api.notifications.WatchBooking(req, metadata=self.api.md, timeout=30):
            pass
        return await self.get(booking_id)

    async def until(self, booking_id: str, kind: int, timeout_s: float = 20) -> c.Booking:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            b = await self.get(booking_id)
            if any(e.type == kind for e in b.history):
                return b
            await asyncio.sleep(0.1)
        raise Failed(f"{c.EventType.Name(kind)} did not arrive in {timeout_s}s")

    async def services(self) -> list[c.MedicalService]:
        reply = await self.api.bookings.ListServices(booking_pb2.ListServicesRequest(), metadata=self.api.md)
        return list(reply.services)

    async def quota(self) -> admin_pb2.Quota:
        return (await self.api.admin.GetQuota(admin_pb2.GetQuotaRequest(), metadata=self.api.md)).quota

    async def today(self) -> datetime:
        return datetime.now(self.tz)

    async def give_back(self, used_before: int, timeout_s: float = 30) -> None:
        """Cancel every booking this run holds; wait until the quota is back where it was."""
        limit = asyncio.Semaphore(16)

        async def cancel(booking_id: str) -> None:
            async with limit:
                req = booking_pb2.CancelBookingRequest(
                    booking_id=booking_id, reason="clinic scenarios clean-up"
                )
                try:
                    await self.api.bookings.CancelBooking(req, metadata=self.api.md, timeout=10)
                except grpc.aio.AioRpcError as err:
                    if err.code() != grpc.StatusCode.FAILED_PRECONDITION:  # already REJECTED/CANCELLED
                        raise

        made, self.made = self.made, []
        await asyncio.gather(*(cancel(b) for b in made))
        deadline = time.monotonic() + timeout_s
        while (used := (await self.quota()).used) > used_before:
            if time.monotonic() > deadline:
                raise Failed(f"quota used is {used} after the clean-up, was {used_before}")
            await asyncio.sleep(0.1)


async def birthday(run: Run) -> str:
    today = (await run.today()).date()
    dob = today.replace(year=1990) if (today.month, today.day) != (2, 29) else today.replace(year=1992)
    cheap = min((s for s in await run.services() if not s.genders), key=lambda s: s.price.amount_minor)
    b = await run.book(run.patient(gender=c.GENDER_FEMALE, dob=dob.isoformat()), [cheap.id])
    if b.status != c.BOOKING_STATUS_CONFIRMED or b.discount.outcome != c.DISCOUNT_OUTCOME_APPLIED:
        raise Failed(f"expected CONFIRMED with discount APPLIED, got {summary(b)}")
    expected = b.base_price.amount_minor - (b.base_price.amount_minor * b.discount.percent * 2 + 100) // 200
    if b.final_price.amount_minor != expected:
        raise Failed(f"final {format_minor(b.final_price.amount_minor)} != {format_minor(expected)}")
    base, final = format_minor(b.base_price.amount_minor), format_minor(b.final_price.amount_minor)
    return f"{base} - {b.discount.percent}% = {final}"


async def quota_exhausted(run: Run) -> str:
    q = await run.quota()
    eligible = [s for s in await run.services() if not s.genders and s.price.amount_minor > HIGH_VALUE_MINOR]
    if not eligible:
        raise Failed("no service for everyone costs more than the discount threshold")
    pricey = max(eligible, key=lambda s: s.daily_capacity)
    today = (await run.today()).date()
    results: list[c.Booking] = []
    limit = asyncio.Semaphore(16)

    async def one(i: int):  # a date each, so capacity never decides
        async with limit:
            day = (today + timedelta(days=10 + i % 350)).isoformat()
            results.append(await run.book(run.patient(), [pricey.id], day))

    await asyncio.gather(*(one(i) for i in range(q.remaining)))
    applied = sum(b.discount.outcome == c.DISCOUNT_OUTCOME_APPLIED for b in results)
    last = await run.book(run.patient(), [pricey.id], (today + timedelta(days=365)).isoformat())
    if applied != q.remaining:
        raise Failed(f"{applied} discounts for {q.remaining} remaining units")
    if (
        last.rejection_reason != c.REJECTION_REASON_QUOTA_EXHAUSTED
        or last.status_message != "Daily discount quota reached"
    ):
        raise Failed(f"the next booking was {summary(last)}: {last.status_message!r}")
    await run.give_back(q.used)
    return f"{applied} granted, then rejected: {last.status_message}; all {applied} units given back"


async def capacity_compensation(run: Run) -> str:
    candidates = [
        s for s in await run.services() if s.price.amount_minor > HIGH_VALUE_MINOR and not s.genders
    ]
    small = min(candidates, key=lambda s: s.daily_capacity)
    day = ((await run.today()).date() + timedelta(days=random.randint(200, 360))).isoformat()
    used_before = (await run.quota()).used
    await asyncio.gather(*(run.book(run.patient(), [small.id], day) for _ in range(small.daily_capacity)))
    over = await run.book(run.patient(), [small.id], day)
    if over.rejection_reason != c.REJECTION_REASON_CAPACITY_UNAVAILABLE:
        raise Failed(f"expected REJECTED (CAPACITY_UNAVAILABLE), got {summary(over)}")
    if over.discount.outcome in (c.DISCOUNT_OUTCOME_APPLIED, c.DISCOUNT_OUTCOME_RELEASED):
        # the discount was decided before the places: its unit must come back
        released = await run.until(over.id, c.EVENT_TYPE_QUOTA_RELEASED)
        if released.discount.outcome != c.DISCOUNT_OUTCOME_RELEASED:
            raise Failed(f"discount not marked RELEASED: {summary(released)}")
        detail = "discount granted, booking rejected, quota unit released"
    elif over.discount.outcome:
        raise Failed(f"the over-capacity booking got a discount decision: {summary(over)}")
    else:  # places before money: no place, so the quota was never touched
        detail = "booking rejected before any discount; the quota was not touched"
    await run.give_back(used_before)
    return f"{small.id} full on {day}; {detail}"


async def blocklist(run: Run) -> str:
    b = await run.book(run.patient("fail_test_user"), ["gen-consult"])
    if b.rejection_reason != c.REJECTION_REASON_PATIENT_BLOCKED:
        raise Failed(f"expected REJECTED (PATIENT_BLOCKED), got {summary(b)}")
    return "fail_test_user rejected: PATIENT_BLOCKED"


async def _doctor(run: Run, capacity: int = 10) -> doctor_pb2.Doctor:
    consult = min((s for s in await run.services() if not s.genders), key=lambda s: s.price.amount_minor)
    req = doctor_pb2.CreateDoctorRequest(
        code=f"SCN-{uuid.uuid4().hex[:8]}",
        name="Dr Scenario",
        service_ids=[consult.id],
        daily_capacity=capacity,
    )
    return (await run.api.doctors.CreateDoctor(req, metadata=run.api.md, timeout=10)).doctor


async def _until_status(run: Run, booking_id: str, status: int, timeout_s: float = 30) -> c.Booking:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        b = await run.get(booking_id)
        if b.status == status:
            return b
        await asyncio.sleep(0.1)
    raise Failed(f"{booking_id} is {summary(b)}, not {c.BookingStatus.Name(status)} after {timeout_s:.0f}s")


async def _until_offered(run: Run, booking_id: str, timeout_s: float = 30) -> c.Booking:
    return await run.until(booking_id, c.EVENT_TYPE_WAITLIST_OFFERED, timeout_s)


async def _code(call) -> str:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code().name
    return "OK"


async def _later(run: Run) -> str:
    return ((await run.today()).date() + timedelta(days=random.randint(30, 360))).isoformat()


async def doctor_tokens(run: Run) -> str:
    doctor, day = await _doctor(run, capacity=10), await _later(run)
    services = list(doctor.service_ids)
    done = await asyncio.gather(
        *(run.book(run.patient(), services, day, doctor_id=doctor.id) for _ in range(30))
    )
    tokens = sorted(b.token for b in done if b.status == c.BOOKING_STATUS_CONFIRMED)
    full = [b for b in done if b.rejection_reason == c.REJECTION_REASON_CAPACITY_UNAVAILABLE]
    if tokens != list(range(1, 11)) or len(full) != 20:
        raise Failed(f"tokens {tokens}, {len(full)} refused for capacity (expected 1..10 and 20)")
    return f"30 bookings for {doctor.code}'s 10 tokens: tokens 1..10 once each, 20 CAPACITY_UNAVAILABLE"


async def overlapping_time(run: Run) -> str:
    doctor, day = await _doctor(run), await _later(run)
    services = list(doctor.service_ids)
    first = await run.book(
        run.patient(), services, day, doctor_id=doctor.id, start_time="10:00", duration_minutes=30
    )
    second = await run.book(run.patient(), services, day, doctor_id=doctor.id, start_time="10:15")
    if (
        first.status != c.BOOKING_STATUS_CONFIRMED
        or second.rejection_reason != c.REJECTION_REASON_SLOT_UNAVAILABLE
    ):
        raise Failed(f"10:00-10:30 {summary(first)}, then 10:15 {summary(second)}")
    return "10:00-10:30 confirmed; 10:15 refused: SLOT_UNAVAILABLE"


async def absent_doctor(run: Run) -> str:
    doctor, day = await _doctor(run), await _later(run)
    req = doctor_pb2.SetAvailabilityRequest(doctor_id=doctor.id, date=day, present=False, note="on leave")
    await run.api.doctors.SetAvailability(req, metadata=run.api.md, timeout=10)
    b = await run.book(run.patient(), list(doctor.service_ids), day, doctor_id=doctor.id)
    if b.rejection_reason != c.REJECTION_REASON_DOCTOR_UNAVAILABLE:
        raise Failed(f"expected REJECTED (DOCTOR_UNAVAILABLE), got {summary(b)}")
    return f"{doctor.code} absent on {day}: DOCTOR_UNAVAILABLE"


async def duplicate_phone(run: Run) -> str:
    digits = "9" + str(random.randint(10**8, 10**9 - 1))
    spellings = [digits, f"+91 {digits[:5]} {digits[5:]}", f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"]

    async def register(phone: str) -> patient_pb2.RegisterPatientResponse:
        req = patient_pb2.RegisterPatientRequest(
            name="Scenario", phone=phone, gender=c.GENDER_FEMALE, date_of_birth="1990-01-01"
        )
        return await run.api.patients.RegisterPatient(req, metadata=run.api.md, timeout=10)

    answers = await asyncio.gather(*(register(p) for p in spellings))
    ids = {a.patient.id for a in answers}
    if len(ids) != 1 or sum(a.created for a in answers) > 1:
        raise Failed(f"{len(ids)} patients for one phone")
    return f"{len(spellings)} spellings of {answers[0].patient.phone}: one patient {ids.pop()}"


async def queue_positions(run: Run) -> str:
    doctor = await _doctor(run)
    desk = frontdesk_pb2_grpc.FrontDeskServiceStub(run.api.channel)
    today = [await run.book(run.patient(), list(doctor.service_ids), doctor_id=doctor.id) for _ in range(3)]
    positions = []
    for b in today:
        req = frontdesk_pb2.CheckInRequest(booking_id=b.id)
        positions.append((await desk.CheckIn(req, metadata=run.api.md, timeout=10)).visit.position)
    if positions != [1, 2, 3]:
        raise Failed(f"check-ins got positions {positions}")
    again = await _code(
        desk.CheckIn(frontdesk_pb2.CheckInRequest(booking_id=today[0].id), metadata=run.api.md)
    )
    tomorrow = await run.book(run.patient(), list(doctor.service_ids), await _later(run), doctor_id=doctor.id)
    early = await _code(
        desk.CheckIn(frontdesk_pb2.CheckInRequest(booking_id=tomorrow.id), metadata=run.api.md)
    )
    if (again, early) != ("ALREADY_EXISTS", "FAILED_PRECONDITION"):
        raise Failed(f"a second check-in answered {again}, a check-in on the wrong day {early}")
    return "positions 1, 2, 3 in check-in order; again: ALREADY_EXISTS; wrong day: FAILED_PRECONDITION"


async def waitlist_offer_accepted(run: Run) -> str:
    doctor, day = await _doctor(run, capacity=1), await _later(run)
    services = list(doctor.service_ids)
    first = await run.book(run.patient(), services, day, doctor_id=doctor.id)
    waiting = await run.create(run.patient(), services, day, doctor_id=doctor.id, waitlist=True)
    waiting = await _until_status(run, waiting.id, c.BOOKING_STATUS_WAITLISTED)
    if first.status != c.BOOKING_STATUS_CONFIRMED or waiting.status != c.BOOKING_STATUS_WAITLISTED:
        raise Failed(f"first {summary(first)}, second {summary(waiting)} (expected CONFIRMED, WAITLISTED)")
    cancel = booking_pb2.CancelBookingRequest(booking_id=first.id, reason="scenario")
    await run.api.bookings.CancelBooking(cancel, metadata=run.api.md, timeout=10)
    await _until_offered(run, waiting.id)
    accept = booking_pb2.AcceptOfferRequest(booking_id=waiting.id)
    await run.api.bookings.AcceptOffer(accept, metadata=run.api.md, timeout=10)
    done = await _until_status(run, waiting.id, c.BOOKING_STATUS_CONFIRMED)
    place = f"waitlisted #{waiting.waitlist_position}; a cancellation offered the place"
    return f"{place}; accepted: CONFIRMED, token {done.token}"


async def waitlist_offer_expires(run: Run) -> str:
    doctor, day = await _doctor(run, capacity=1), await _later(run)
    services = list(doctor.service_ids)
    first = await run.book(run.patient(), services, day, doctor_id=doctor.id)
    second = await run.create(run.patient(), services, day, doctor_id=doctor.id, waitlist=True)
    await _until_status(run, second.id, c.BOOKING_STATUS_WAITLISTED)
    third = await run.create(run.patient(), services, day, doctor_id=doctor.id, waitlist=True)
    await _until_status(run, third.id, c.BOOKING_STATUS_WAITLISTED)
    cancel = booking_pb2.CancelBookingRequest(booking_id=first.id, reason="scenario")
    await run.api.bookings.CancelBooking(cancel, metadata=run.api.md, timeout=10)
    offered = await _until_offered(run, second.id)
    wait_s = offered.offer_expires_at.seconds - time.time()
    if wait_s > 60:
        return (
            f"offer made, expiring in {wait_s:.0f}s: not waited for here (WAITLIST_OFFER_SECONDS is long on "
            "this system; the throwaway system uses 3 s)"
        )
    expired = await _until_status(run, second.id, c.BOOKING_STATUS_REJECTED, timeout_s=wait_s + 30)
    if expired.rejection_reason != c.REJECTION_REASON_OFFER_EXPIRED:
        raise Failed(f"the unanswered offer ended {summary(expired)}")
    await _until_offered(run, third.id)
    return "the first in line let the offer expire (REJECTED OFFER_EXPIRED); the place went to the next"


async def reschedule(run: Run) -> str:
    doctor, day = await _doctor(run, capacity=1), await _later(run)
    services = list(doctor.service_ids)
    b = await run.book(run.patient(), services, day, doctor_id=doctor.id, start_time="10:00")
    other = await _doctor(run, capacity=1)
    taken = await run.book(run.patient(), services, day, doctor_id=other.id, start_time="12:00")
    if (b.status, taken.status) != (c.BOOKING_STATUS_CONFIRMED,) * 2:
        raise Failed(f"expected two CONFIRMED bookings, got {summary(b)} and {summary(taken)}")

    async def move(**target) -> c.Booking:
        req = booking_pb2.RescheduleBookingRequest(booking_id=b.id, **target)
        asked = (await run.api.bookings.RescheduleBooking(req, metadata=run.api.md, timeout=10)).booking
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = booking_pb2.GetBookingRequest(booking_id=b.id)
            now = (await run.api.bookings.GetBooking(got, metadata=run.api.md, timeout=10)).booking
            if len(now.history) > len(asked.history):
                return now
            await asyncio.sleep(0.1)
        raise Failed("no answer to the reschedule")

    refused = await move(doctor_id=other.id, start_time="12:00")  # the other doctor's 12:00 is taken
    if refused.history[-1].type != c.EVENT_TYPE_RESCHEDULE_REFUSED or refused.start_time != "10:00":
        raise Failed(f"a move into a taken time: {refused.status_message}")
    moved = await move(doctor_id=other.id, start_time="11:00")  # a full day of capacity 1 elsewhere: no
    if moved.history[-1].type != c.EVENT_TYPE_RESCHEDULE_REFUSED:
        raise Failed(f"a move into a full day: {moved.status_message}")
    moved = await move(start_time="11:00")  # its own doctor's day: it keeps its token
    if moved.history[-1].type != c.EVENT_TYPE_BOOKING_RESCHEDULED or moved.token != b.token:
        raise Failed(f"a move within its day: {moved.status_message}")
    return "into a taken time or a full day: REFUSED, places kept; within its day: RESCHEDULED, same token"


SCENARIOS = [
    ("birthday discount", birthday),
    ("quota exhausted", quota_exhausted),
    ("capacity: refused before the discount", capacity_compensation),
    ("blocklist", blocklist),
    ("doctor tokens: 30 for 10", doctor_tokens),
    ("overlapping time refused", overlapping_time),
    ("absent doctor refused", absent_doctor),
    ("duplicate phone, one patient", duplicate_phone),
    ("check-in queue", queue_positions),
    ("waitlist: offer accepted", waitlist_offer_accepted),
    ("waitlist: offer expired, next in line", waitlist_offer_expires),
    ("reschedule: new places first", reschedule),
]


async def plan(api: Api) -> str:
    """What a live run will do to the system, in a few lines (read-only calls)."""
    run = Run(api, ZoneInfo("UTC"))
    q = await run.quota()
    services = await run.services()
    pricey = [s for s in services if s.price.amount_minor > HIGH_VALUE_MINOR and not s.genders]
    capacity = min((s.daily_capacity for s in pricey), default=0)
    total = 1 + q.remaining + 1 + capacity + 1 + 1 + 30 + 2 + 1 + 4 + 2 + 3 + 2
    return (
        f"  - make about {total} real bookings for patients named scenario-… (and fail_test_user),\n"
        f"    on dates up to a year ahead;\n"
        f"  - add eight doctors coded SCN-… (one marked absent on one date) and register one patient\n"
        f"    (a random phone); these stay; check three of today's bookings in to one new doctor's queue;\n"
        f"  - use today's {q.remaining} remaining discount units ({q.used} of {q.limit} used) for a moment,\n"
        f"    and fill the smallest high-value service ({capacity} places) on one far date;\n"
        f"  - then cancel every booking it made: the units and places are given back, the cancelled\n"
        f"    bookings stay in the patients' history."
    )


async def run(api: Api, tz: ZoneInfo) -> int:
    out = console()
    state = Run(api, tz)
    used_before = (await state.quota()).used
    failures = 0
    for name, scenario in SCENARIOS:
        try:
            detail = await scenario(state)
            out.print(f"[green]PASS[/] {name}: {detail}")
        except Failed as exc:
            failures += 1
            out.print(f"[red]FAIL[/] {name}: {exc}")
    try:
        await state.give_back(used_before)
    except Failed as exc:
        failures += 1
        out.print(f"[red]FAIL[/] clean-up: {exc}")
    return 1 if failures else 0
