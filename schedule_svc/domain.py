"""Registry and schedule rules: pure functions, no grpc, nats or redis.

Times of day are minutes since midnight in the clinic's time zone; a doctor's day is the half-open
interval [day_start, day_end), and so is a booking's [start, start + duration).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from clinic.v1 import common_pb2, doctor_pb2, patient_pb2
from clinic_common.catalog import Catalog
from clinic_common.clock import parse_date
from clinic_common.timeutil import hhmm, parse_hhmm

MAX_NAME_LEN = 200
MAX_EMAIL_LEN = 254
MAX_NOTE_LEN = 500
MAX_CODE_LEN = 32
MAX_SPECIALTY_LEN = 100
MAX_ID_LEN = 64
MAX_SERVICES = 20
MAX_DAYS_AHEAD = 366
MAX_DAILY_CAPACITY = 500

DEFAULT_CAPACITY = 10
DEFAULT_DAY_START = "09:00"
DEFAULT_DAY_END = "17:00"
DEFAULT_SLOT_MINUTES = 15
MIN_DURATION, MAX_DURATION = 15, 480

CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_PHONE_NOISE = re.compile(r"[\s\-().\[\]]")

Violations = list[tuple[str, str]]


# -- phones ------------------------------------------------------------------------------------


def normalise_phone(raw: str, country_code: str) -> str | None:
    """E.164 (`+919876543210`) from any usual spelling, or None when it is not a phone number.

    Spaces, dashes, dots and brackets are dropped; `00` becomes `+`; a 10-digit number gets the
    clinic's country code, and so does an 11-digit one with a trunk `0` in front.
    """
    text = _PHONE_NOISE.sub("", raw.strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+"):
        if not text.isdigit():
            return None
        if len(text) == 11 and text.startswith("0"):
            text = text[1:]
        if len(text) == 10:
            text = f"+{country_code}{text}"
        elif text.startswith(country_code) and len(text) == len(country_code) + 10:
            text = "+" + text
        else:
            return None
    return text if E164.match(text) else None


# -- times -------------------------------------------------------------------------------------


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def booking_of(holder: str) -> str:
    """A holder is a booking id, or "<booking>~<move>" for the places a reschedule of it takes."""
    return holder.partition("~")[0]


def patient_busy(holder: str, interval: tuple[int, int], held: Mapping[str, tuple[int, int]]) -> bool:
    """No patient holds two overlapping times, with any doctors: `held` is the patient's intervals
    on the date by holder; the booking's own holders never count (a move may overlap its old time).
    The reserve script (places.py, `fits`) applies the same rule in the same step as the places."""
    mine = booking_of(holder)
    return any(booking_of(other) != mine and overlaps(interval, span) for other, span in held.items())


def free_times(day_start: int, day_end: int, slot: int, taken: Iterable[tuple[int, int]]) -> list[str]:
    """Starts of the slot-long intervals, on the slot grid from day_start, that overlap nothing taken."""
    busy = sorted(taken)
    free = []
    for start in range(day_start, day_end - slot + 1, slot):
        if not any(overlaps((start, start + slot), t) for t in busy):
            free.append(hhmm(start))
    return free


# -- patients ----------------------------------------------------------------------------------


def check_patient_fields(
    name: str, gender: int, date_of_birth: str, email: str, today: date, prefix: str = ""
) -> Violations:
    bad: Violations = []
    if not name.strip():
        bad.append((f"{prefix}name", "must not be empty"))
    elif len(name) > MAX_NAME_LEN:
        bad.append((f"{prefix}name", f"at most {MAX_NAME_LEN} characters"))
    if gender not in (common_pb2.GENDER_FEMALE, common_pb2.GENDER_MALE, common_pb2.GENDER_OTHER):
        bad.append((f"{prefix}gender", "must be GENDER_FEMALE, GENDER_MALE or GENDER_OTHER"))
    bad += check_date_of_birth(date_of_birth, today, f"{prefix}date_of_birth")
    if email and (len(email) > MAX_EMAIL_LEN or not EMAIL.match(email)):
        bad.append((f"{prefix}email", "must be an email address such as name@example.com"))
    return bad


def check_date_of_birth(text: str, today: date, field: str = "date_of_birth") -> Violations:
    try:
        born = parse_date(text)
    except ValueError as exc:
        return [(field, str(exc))]
    return [(field, "must not be in the future")] if born > today else []


def validate_registration(
    req: patient_pb2.RegisterPatientRequest, country_code: str, today: date
) -> tuple[Violations, str]:
    """Every bad field of a registration, and the normalised phone."""
    bad = check_patient_fields(req.name, req.gender, req.date_of_birth, req.email, today)
    phone = normalise_phone(req.phone, country_code) if req.phone.strip() else None
    if not req.phone.strip():
        bad.append(("phone", "must not be empty"))
    elif phone is None:
        bad.append(("phone", "is not a phone number (digits, optionally with +country code)"))
    return bad, phone or ""


def normalise_email(email: str) -> str:
    return email.strip().lower()


# -- doctors -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hours:
    start: int
    end: int


def validate_doctor(
    req: doctor_pb2.CreateDoctorRequest, catalog: Catalog
) -> tuple[Violations, doctor_pb2.Doctor]:
    """Every bad field of CreateDoctor, and the doctor it describes (defaults filled in, no id yet)."""
    bad: Violations = []
    if not req.code:
        bad.append(("code", "must not be empty"))
    elif len(req.code) > MAX_CODE_LEN or not CODE.match(req.code):
        bad.append(("code", f"up to {MAX_CODE_LEN} letters, digits or ._- characters"))
    if not req.name.strip():
        bad.append(("name", "must not be empty"))
    elif len(req.name) > MAX_NAME_LEN:
        bad.append(("name", f"at most {MAX_NAME_LEN} characters"))
    if len(req.specialty) > MAX_SPECIALTY_LEN:
        bad.append(("specialty", f"at most {MAX_SPECIALTY_LEN} characters"))
    bad += check_service_ids(req.service_ids, catalog)
    capacity = req.daily_capacity or DEFAULT_CAPACITY
    if not 1 <= capacity <= MAX_DAILY_CAPACITY:
        bad.append(("daily_capacity", f"between 1 and {MAX_DAILY_CAPACITY}"))
    slot = req.slot_minutes or DEFAULT_SLOT_MINUTES
    if not MIN_DURATION <= slot <= MAX_DURATION:
        bad.append(("slot_minutes", f"between {MIN_DURATION} and {MAX_DURATION}"))
    day_start, day_end = req.day_start or DEFAULT_DAY_START, req.day_end or DEFAULT_DAY_END
    bad += check_hours(day_start, day_end)
    doctor = doctor_pb2.Doctor(
        code=req.code,
        name=req.name.strip(),
        specialty=req.specialty.strip(),
        service_ids=list(req.service_ids),
        daily_capacity=capacity,
        day_start=day_start,
        day_end=day_end,
        slot_minutes=slot,
    )
    return bad, doctor


def check_service_ids(service_ids: Iterable[str], catalog: Catalog) -> Violations:
    ids = list(service_ids)
    if not ids:
        return [("service_ids", "at least one service the doctor performs")]
    if len(ids) > MAX_SERVICES:
        return [("service_ids", f"at most {MAX_SERVICES} services")]
    bad: Violations = []
    for i, service_id in enumerate(ids):
        if service_id not in catalog.services:
            bad.append((f"service_ids[{i}]", "unknown service id"))
        elif service_id in ids[:i]:
            bad.append((f"service_ids[{i}]", "listed twice"))
    return bad


def check_hours(day_start: str, day_end: str, start_field="day_start", end_field="day_end") -> Violations:
    bad: Violations = []
    try:
        start = parse_hhmm(day_start)
    except ValueError:
        bad.append((start_field, "must be a time as HH:MM"))
        start = None
    try:
        end = parse_hhmm(day_end)
    except ValueError:
        bad.append((end_field, "must be a time as HH:MM"))
        end = None
    if start is not None and end is not None and end <= start:
        bad.append((end_field, f"must be after {start_field}"))
    return bad


def check_day(text: str, today: date, field: str = "date") -> Violations:
    """A date for a doctor's day: today or later, at most a year ahead."""
    try:
        day = parse_date(text)
    except ValueError as exc:
        return [(field, str(exc))]
    if day < today:
        return [(field, "must not be before today")]
    if day > today + timedelta(days=MAX_DAYS_AHEAD):
        return [(field, f"at most {MAX_DAYS_AHEAD} days ahead")]
    return []


def validate_availability(req: doctor_pb2.SetAvailabilityRequest, today: date) -> Violations:
    bad: Violations = []
    if not req.doctor_id:
        bad.append(("doctor_id", "must not be empty"))
    elif len(req.doctor_id) > MAX_ID_LEN:
        bad.append(("doctor_id", f"at most {MAX_ID_LEN} characters"))
    bad += check_day(req.date, today)
    if len(req.note) > MAX_NOTE_LEN:
        bad.append(("note", f"at most {MAX_NOTE_LEN} characters"))
    for name in ("day_start", "day_end"):
        if req.HasField(name):
            try:
                parse_hhmm(getattr(req, name))
            except ValueError:
                bad.append((name, "must be a time as HH:MM"))
    if req.HasField("day_start") and req.HasField("day_end") and not bad:
        bad += check_hours(req.day_start, req.day_end)
    if req.HasField("daily_capacity") and not 0 <= req.daily_capacity <= MAX_DAILY_CAPACITY:
        bad.append(("daily_capacity", f"between 0 and {MAX_DAILY_CAPACITY}"))
    return bad


@dataclass(frozen=True)
class DayPlan:
    """A doctor's day as it stands: the doctor's defaults with that date's availability on top."""

    present: bool
    note: str
    capacity: int
    start: int
    end: int


def plan_for(doctor: doctor_pb2.Doctor, override: dict[str, str]) -> DayPlan:
    return DayPlan(
        present=override.get("present", "1") == "1",
        note=override.get("note", ""),
        capacity=int(override.get("capacity", doctor.daily_capacity)),
        start=int(override.get("start", parse_hhmm(doctor.day_start))),
        end=int(override.get("end", parse_hhmm(doctor.day_end))),
    )


def day_view(
    doctor: doctor_pb2.Doctor,
    day: str,
    plan: DayPlan,
    tokens_held: int,
    intervals: list[tuple[int, int]],
    waitlisted: int = 0,
) -> doctor_pb2.DoctorDay:
    remaining = max(plan.capacity - tokens_held, 0) if plan.present else 0
    free = free_times(plan.start, plan.end, doctor.slot_minutes, intervals) if remaining else []
    return doctor_pb2.DoctorDay(
        doctor_id=doctor.id,
        date=day,
        present=plan.present,
        note=plan.note,
        capacity=plan.capacity,
        booked=tokens_held,
        remaining=remaining,
        waitlisted=waitlisted,
        free_times=free,
        day_start=hhmm(plan.start),
        day_end=hhmm(plan.end),
    )


# -- places ------------------------------------------------------------------------------------
# The rule the reservation script (schedule_svc/places.py, `fits` and `take` in _HELPERS) applies
# atomically in Redis, stated once in Python so it can be read and tested on its own:
# - a booking with a doctor takes that doctor's lowest free token 1..capacity of the day (none free:
#   `capacity`); an absent doctor gives none (`doctor`);
# - its interval, when it has one, lies inside the day's hours (`hours`) and overlaps no interval
#   already taken that day (`slot`);
# - every service it books has a place left of that service's daily capacity (`capacity`);
# - its interval overlaps none of the patient's other intervals that date, with any doctor (`busy`,
#   `patient_busy` above; tests/integration/test_reschedule.py holds the script to it);
# - a reschedule's new places (holder "<booking>~<n>") count what the booking's current holder on
#   the same date has (token, interval, service places) as free: they go as soon as these are held;
# - all of it or nothing: a refused booking changes nothing.
# The script answers `hours` as `slot` to the caller; a booking that asked for the waitlist waits on
# `capacity` or `slot` (a place like that can free up), never on `doctor` or `hours`.

NO_INTERVAL = -1


@dataclass(frozen=True)
class PlacesAsk:
    """What one booking asks of one date: a doctor ('' for none), an interval, its services."""

    booking_id: str
    services: tuple[tuple[str, int], ...]  # (service id, that service's daily capacity)
    doctor_id: str = ""
    start: int = NO_INTERVAL  # minutes since midnight
    end: int = NO_INTERVAL


@dataclass(frozen=True)
class PlacesDay:
    """One date as the places see it: the doctor's day and what is taken (doctor's tokens and
    intervals, each service's holders)."""

    present: bool = True
    capacity: int = DEFAULT_CAPACITY
    start: int = 9 * 60
    end: int = 17 * 60
    tokens: frozenset[int] = frozenset()
    intervals: tuple[tuple[int, int], ...] = ()
    service_held: tuple[tuple[str, int], ...] = ()  # (service id, bookings holding a place)

    def held_of(self, service_id: str) -> int:
        return dict(self.service_held).get(service_id, 0)


@dataclass(frozen=True)
class PlacesGrant:
    token: int  # 0: no doctor, so no token
    day: PlacesDay  # the date with this booking's places taken


def places_fit(ask: PlacesAsk, day: PlacesDay) -> tuple[int, str]:
    """(the token `ask` would get, '') or (0, why not: doctor | capacity | hours | slot)."""
    token = 0
    if ask.doctor_id:
        if not day.present:
            return 0, "doctor"
        token = next((i for i in range(1, day.capacity + 1) if i not in day.tokens), 0)
        if token == 0:
            return 0, "capacity"
        if ask.start >= 0:
            if ask.start < day.start or ask.end > day.end:
                return 0, "hours"
            if any(overlaps((ask.start, ask.end), taken) for taken in day.intervals):
                return 0, "slot"
    for service_id, capacity in ask.services:
        if day.held_of(service_id) >= capacity:
            return 0, "capacity"
    return token, ""


def take_places(ask: PlacesAsk, day: PlacesDay) -> PlacesGrant | str:
    """All the places of `ask` (the grant, with the new day) or none (why not; `day` unchanged)."""
    token, reason = places_fit(ask, day)
    if reason:
        return reason
    held = dict(day.service_held)
    for service_id in dict(ask.services):  # a set of holders per service: a booking counts once
        held[service_id] = held.get(service_id, 0) + 1
    interval = ask.doctor_id and ask.start >= 0
    taken = PlacesDay(
        present=day.present,
        capacity=day.capacity,
        start=day.start,
        end=day.end,
        tokens=day.tokens | {token} if token else day.tokens,
        intervals=(*day.intervals, (ask.start, ask.end)) if interval else day.intervals,
        service_held=tuple(held.items()),
    )
    return PlacesGrant(token, taken)
