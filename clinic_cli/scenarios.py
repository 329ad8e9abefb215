"""`clinic scenarios`: the seed scenarios against a running system, PASS/FAIL each."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from clinic.v1 import admin_pb2, booking_pb2, doctor_pb2, notification_pb2, patient_pb2
from clinic.v1 import common_pb2 as c
from clinic_common.money import format_minor

from .client import Api
from .show import console

FINAL = {c.BOOKING_STATUS_CONFIRMED, c.BOOKING_STATUS_REJECTED, c.BOOKING_STATUS_CANCELLED}


class Failed(Exception):
    pass


def _patient(pid: str | None = None, gender=c.GENDER_MALE, dob="1985-03-10") -> c.Patient:
    return c.Patient(
        id=pid or f"scenario-{uuid.uuid4().hex[:10]}", name="Scenario", gender=gender, date_of_birth=dob
    )


async def _outcome(api: Api, booking_id: str) -> c.Booking:
    req = notification_pb2.WatchBookingRequest(booking_id=booking_id)
    async for _ in api.notifications.WatchBooking(req, metadata=api.md, timeout=30):
        pass
    return (
        await api.bookings.GetBooking(booking_pb2.GetBookingRequest(booking_id=booking_id), metadata=api.md)
    ).booking


async def _book(api: Api, patient: c.Patient, service_ids, day: str = "", **kw) -> c.Booking:
    req = booking_pb2.CreateBookingRequest(
        patient=patient, service_ids=service_ids, appointment_date=day, **kw
    )
    booking = (await api.bookings.CreateBooking(req, metadata=api.md, timeout=10)).booking
    return await _outcome(api, booking.id)


async def _until(api: Api, booking_id: str, kind: int, timeout_s: float = 20) -> c.Booking:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        b = (
            await api.bookings.GetBooking(
                booking_pb2.GetBookingRequest(booking_id=booking_id), metadata=api.md
            )
        ).booking
        if any(e.type == kind for e in b.history):
            return b
        await asyncio.sleep(0.1)
    raise Failed(f"{c.EventType.Name(kind)} did not arrive in {timeout_s}s")


async def _services(api: Api) -> list[c.MedicalService]:
    return list(
        (await api.bookings.ListServices(booking_pb2.ListServicesRequest(), metadata=api.md)).services
    )


async def birthday(api: Api, tz: ZoneInfo) -> str:
    today = datetime.now(tz).date()
    dob = today.replace(year=1990) if (today.month, today.day) != (2, 29) else today.replace(year=1992)
    cheap = min((s for s in await _services(api) if not s.genders), key=lambda s: s.price.amount_minor)
    b = await _book(api, _patient(gender=c.GENDER_FEMALE, dob=dob.isoformat()), [cheap.id])
    if b.status != c.BOOKING_STATUS_CONFIRMED or b.discount.outcome != c.DISCOUNT_OUTCOME_APPLIED:
        raise Failed(
            f"expected CONFIRMED with APPLIED, got {c.BookingStatus.Name(b.status)} / {b.discount.outcome}"
        )
    expected = b.base_price.amount_minor - (b.base_price.amount_minor * b.discount.percent * 2 + 100) // 200
    if b.final_price.amount_minor != expected:
        raise Failed(f"final {b.final_price.amount_minor} != {expected}")
    base, final = format_minor(b.base_price.amount_minor), format_minor(b.final_price.amount_minor)
    return f"{base} - {b.discount.percent}% = {final}"


async def quota_exhausted(api: Api, tz: ZoneInfo) -> str:
    q = (await api.admin.GetQuota(admin_pb2.GetQuotaRequest(), metadata=api.md)).quota
    eligible = [s for s in await _services(api) if not s.genders and s.price.amount_minor > 100_000]
    if not eligible:
        raise Failed("no service for everyone costs more than the discount threshold")
    pricey = max(eligible, key=lambda s: s.daily_capacity)
    today = datetime.now(tz).date()
    try:
        results: list[c.Booking] = []
        limit = asyncio.Semaphore(16)

        async def one(i: int):  # a date each, so capacity never decides
            async with limit:
                day = (today + timedelta(days=10 + i % 350)).isoformat()
                results.append(await _book(api, _patient(), [pricey.id], day))

        await asyncio.gather(*(one(i) for i in range(q.remaining)))
        applied = sum(b.discount.outcome == c.DISCOUNT_OUTCOME_APPLIED for b in results)
        last = await _book(api, _patient(), [pricey.id], (today + timedelta(days=365)).isoformat())
        if applied != q.remaining:
            raise Failed(f"{applied} discounts for {q.remaining} remaining units")
        if (
            last.rejection_reason != c.REJECTION_REASON_QUOTA_EXHAUSTED
            or last.status_message != "Daily discount quota reached"
        ):
            raise Failed(f"the next booking was {c.BookingStatus.Name(last.status)}: {last.status_message!r}")
        return f"{applied} granted, then rejected: {last.status_message}"
    finally:
        await api.admin.ResetQuota(admin_pb2.ResetQuotaRequest(), metadata=api.md)


async def capacity_compensation(api: Api, tz: ZoneInfo) -> str:
    candidates = [s for s in await _services(api) if s.price.amount_minor > 100_000 and not s.genders]
    small = min(candidates, key=lambda s: s.daily_capacity)
    day = (datetime.now(tz).date() + timedelta(days=random.randint(200, 360))).isoformat()
    full = await asyncio.gather(
        *(_book(api, _patient(), [small.id], day) for _ in range(small.daily_capacity))
    )
    used = (await api.admin.GetQuota(admin_pb2.GetQuotaRequest(), metadata=api.md)).quota.used
    over = await _book(api, _patient(), [small.id], day)
    if over.rejection_reason != c.REJECTION_REASON_CAPACITY_UNAVAILABLE:
        raise Failed(f"expected CAPACITY_UNAVAILABLE, got {c.BookingStatus.Name(over.status)}")
    if over.discount.outcome != c.DISCOUNT_OUTCOME_UNSPECIFIED:
        raise Failed("the over-capacity booking reached the discount step (places come first)")
    if (await api.admin.GetQuota(admin_pb2.GetQuotaRequest(), metadata=api.md)).quota.used != used:
        raise Failed("the over-capacity booking touched the quota")
    held = next((b for b in full if b.discount.outcome == c.DISCOUNT_OUTCOME_APPLIED), full[0])
    await api.bookings.CancelBooking(booking_pb2.CancelBookingRequest(booking_id=held.id), metadata=api.md)
    if held.discount.outcome == c.DISCOUNT_OUTCOME_APPLIED:
        await _until(api, held.id, c.EVENT_TYPE_QUOTA_RELEASED)
    await _until(api, held.id, c.EVENT_TYPE_PLACES_RELEASED)
    return f"{small.id} full on {day}: refused before the discount; a cancellation gave back places and quota"


async def blocklist(api: Api, tz: ZoneInfo) -> str:
    b = await _book(api, _patient("fail_test_user"), ["gen-consult"])
    if b.rejection_reason != c.REJECTION_REASON_PATIENT_BLOCKED:
        raise Failed(f"expected PATIENT_BLOCKED, got {c.BookingStatus.Name(b.status)}")
    return "fail_test_user rejected: PATIENT_BLOCKED"


async def _doctor(api: Api, capacity: int = 10) -> doctor_pb2.Doctor:
    consult = min((x for x in await _services(api) if not x.genders), key=lambda x: x.price.amount_minor)
    req = doctor_pb2.CreateDoctorRequest(
        code=f"SCN-{uuid.uuid4().hex[:8]}",
        name="Dr Scenario",
        service_ids=[consult.id],
        daily_capacity=capacity,
    )
    return (await api.doctors.CreateDoctor(req, metadata=api.md, timeout=10)).doctor


def _later(tz: ZoneInfo) -> str:
    return (datetime.now(tz).date() + timedelta(days=random.randint(30, 360))).isoformat()


async def doctor_tokens(api: Api, tz: ZoneInfo) -> str:
    doctor, day = await _doctor(api, capacity=10), _later(tz)
    done = await asyncio.gather(
        *(_book(api, _patient(), list(doctor.service_ids), day, doctor_id=doctor.id) for _ in range(30))
    )
    tokens = sorted(b.token for b in done if b.status == c.BOOKING_STATUS_CONFIRMED)
    full = [b for b in done if b.rejection_reason == c.REJECTION_REASON_CAPACITY_UNAVAILABLE]
    if tokens != list(range(1, 11)) or len(full) != 20:
        raise Failed(f"tokens {tokens}, {len(full)} refused for capacity (expected 1..10 and 20)")
    return f"30 bookings for {doctor.code}'s 10 tokens: tokens 1..10 once each, 20 CAPACITY_UNAVAILABLE"


async def overlapping_time(api: Api, tz: ZoneInfo) -> str:
    doctor, day = await _doctor(api), _later(tz)
    services = list(doctor.service_ids)
    first = await _book(
        api, _patient(), services, day, doctor_id=doctor.id, start_time="10:00", duration_minutes=30
    )
    second = await _book(api, _patient(), services, day, doctor_id=doctor.id, start_time="10:15")
    if (
        first.status != c.BOOKING_STATUS_CONFIRMED
        or second.rejection_reason != c.REJECTION_REASON_SLOT_UNAVAILABLE
    ):
        raise Failed(f"10:00-10:30 {_name(first)}, then 10:15 {_name(second)}")
    return "10:00-10:30 confirmed; 10:15 refused: SLOT_UNAVAILABLE"


async def absent_doctor(api: Api, tz: ZoneInfo) -> str:
    doctor, day = await _doctor(api), _later(tz)
    req = doctor_pb2.SetAvailabilityRequest(doctor_id=doctor.id, date=day, present=False, note="on leave")
    await api.doctors.SetAvailability(req, metadata=api.md, timeout=10)
    b = await _book(api, _patient(), list(doctor.service_ids), day, doctor_id=doctor.id)
    if b.rejection_reason != c.REJECTION_REASON_DOCTOR_UNAVAILABLE:
        raise Failed(f"expected DOCTOR_UNAVAILABLE, got {_name(b)}")
    return f"{doctor.code} absent on {day}: DOCTOR_UNAVAILABLE"


async def duplicate_phone(api: Api, tz: ZoneInfo) -> str:
    digits = "9" + str(random.randint(10**8, 10**9 - 1))
    spellings = [digits, f"+91 {digits[:5]} {digits[5:]}", f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"]

    async def register(phone: str) -> patient_pb2.RegisterPatientResponse:
        req = patient_pb2.RegisterPatientRequest(
            name="Scenario", phone=phone, gender=c.GENDER_FEMALE, date_of_birth="1990-01-01"
        )
        return await api.patients.RegisterPatient(req, metadata=api.md, timeout=10)

    answers = await asyncio.gather(*(register(p) for p in spellings))
    ids = {a.patient.id for a in answers}
    if len(ids) != 1 or sum(a.created for a in answers) > 1:
        raise Failed(f"{len(ids)} patients for one phone")
    return f"{len(spellings)} spellings of {answers[0].patient.phone}: one patient {ids.pop()}"


def _name(b: c.Booking) -> str:
    reason = c.RejectionReason.Name(b.rejection_reason).removeprefix("REJECTION_REASON_")
    return c.BookingStatus.Name(b.status).removeprefix("BOOKING_STATUS_") + (
        f" {reason}" if b.rejection_reason else ""
    )


SCENARIOS = [
    ("birthday discount", birthday),
    ("quota exhausted", quota_exhausted),
    ("capacity failure with compensation", capacity_compensation),
    ("blocklist", blocklist),
    ("doctor tokens: 30 for 10", doctor_tokens),
    ("overlapping time refused", overlapping_time),
    ("absent doctor refused", absent_doctor),
    ("duplicate phone, one patient", duplicate_phone),
]


async def run(api: Api, tz: ZoneInfo) -> int:
    out = console()
    failures = 0
    for name, scenario in SCENARIOS:
        try:
            detail = await scenario(api, tz)
            out.print(f"[green]PASS[/] {name}: {detail}")
        except Failed as exc:
            failures += 1
            out.print(f"[red]FAIL[/] {name}: {exc}")
    return 1 if failures else 0
