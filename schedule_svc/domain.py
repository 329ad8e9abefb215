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


def free_times(
    day_start: int,
    day_end: int,
    slot: int,
    taken: Iterable[tuple[int, int]],
    *,
    duration: int = 0,
    not_before: int = 0,
) -> list[str]:
    """Starts on the slot grid from day_start of the intervals (duration long, default one slot)
    that lie in the day, start at or after not_before and overlap nothing taken (bookings, breaks)."""
    busy = sorted(taken)
    length = duration or slot
    free = []
    for start in range(day_start, day_end - length + 1, slot):
        if start >= not_before and not any(overlaps((start, start + length), t) for t in busy):
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


PATIENT_PATHS = ("name", "phone", "email", "gender", "date_of_birth", "contact")


def apply_patient_update(
    current: common_pb2.Patient, req: patient_pb2.UpdatePatientRequest, country_code: str, today: date
) -> tuple[Violations, common_pb2.Patient]:
    """Every bad field of an UpdatePatient, and the patient with the masked fields changed.

    Each field is checked as RegisterPatient checks it; a field outside the mask is left alone.
    """
    paths = mask_paths(req.update_mask)
    bad = check_mask(paths, PATIENT_PATHS)
    updated = common_pb2.Patient()
    updated.CopyFrom(current)
    if "name" in paths:
        updated.name = req.name.strip()
    if "gender" in paths:
        updated.gender = req.gender
    if "date_of_birth" in paths:
        updated.date_of_birth = req.date_of_birth
    if "email" in paths:
        updated.email = normalise_email(req.email)
    if "contact" in paths:
        updated.contact.CopyFrom(req.contact)
    checked = check_patient_fields(
        updated.name, updated.gender, updated.date_of_birth, req.email if "email" in paths else "", today
    )
    bad += [(field, why) for field, why in checked if field in paths]
    if "phone" in paths:
        phone = normalise_phone(req.phone, country_code) if req.phone.strip() else None
        if not req.phone.strip():
            bad.append(("phone", "must not be empty"))
        elif phone is None:
            bad.append(("phone", "is not a phone number (digits, optionally with +country code)"))
        else:
            updated.phone = phone
    if "contact" in paths and updated.contact.email and not updated.email:
        bad.append(("contact.email", "the patient has no email address to send to"))
    return bad, updated


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
    """A doctor's day as it stands, resolved from its sources (see resolve_day)."""

    present: bool
    note: str
    capacity: int
    start: int
    end: int
    breaks: tuple[tuple[int, int], ...] = ()
    source: str = "defaults"  # availability | leave | plan | defaults
    on_leave: bool = False
    retired: bool = False


SOURCES = {
    "availability": doctor_pb2.HOURS_SOURCE_AVAILABILITY,
    "leave": doctor_pb2.HOURS_SOURCE_LEAVE,
    "plan": doctor_pb2.HOURS_SOURCE_WEEKLY_PLAN,
    "defaults": doctor_pb2.HOURS_SOURCE_DEFAULTS,
}


def plan_in_force(plans: Iterable[doctor_pb2.WeeklyPlan], day: date) -> doctor_pb2.WeeklyPlan | None:
    """The plan with the latest effective_from on or before `day`."""
    iso = day.isoformat()
    due = [p for p in plans if p.effective_from <= iso]
    return max(due, key=lambda p: p.effective_from) if due else None


def resolve_day(
    doctor: doctor_pb2.Doctor,
    day: date,
    override: dict[str, str],
    leave: dict[str, str] | None = None,
    plans: Iterable[doctor_pb2.WeeklyPlan] = (),
) -> DayPlan:
    """A date's availability, first source that applies: SetAvailability for that date (its own
    hours, falling back to what follows for those it does not set), leave, the weekly plan in
    force for the weekday, the doctor's defaults. A retired doctor is never present. Breaks come
    from the plan's weekday (they only ever take time away)."""
    hours = (parse_hhmm(doctor.day_start), parse_hhmm(doctor.day_end))
    present, source, breaks = True, "defaults", ()
    plan = plan_in_force(plans, day)
    planned = next((d for d in plan.days if d.weekday == day.isoweekday()), None) if plan else None
    if planned is not None:
        source, present = "plan", planned.present
        hours = (
            parse_hhmm(planned.day_start) if planned.day_start else hours[0],
            parse_hhmm(planned.day_end) if planned.day_end else hours[1],
        )
        breaks = tuple(sorted((parse_hhmm(b.start), parse_hhmm(b.end)) for b in planned.breaks))
    note = ""
    if leave is not None:
        source, present, note = "leave", False, leave.get("note", "")
    if override:
        source = "availability"
        present = override.get("present", "1") == "1"
        note = override.get("note", "")
        hours = (int(override.get("start", hours[0])), int(override.get("end", hours[1])))
    return DayPlan(
        present=present and not doctor.retired,
        note=note,
        capacity=int(override.get("capacity", doctor.daily_capacity)),
        start=hours[0],
        end=hours[1],
        breaks=breaks,
        source=source,
        on_leave=leave is not None,
        retired=doctor.retired,
    )


def fits_day(plan: DayPlan, interval: tuple[int, int] | None) -> str:
    """Why a booking (with its interval, if any) cannot have this day: '' it can, 'doctor' absent
    or retired, 'hours' outside the hours or across a break. The reserve script states the same."""
    if not plan.present:
        return "doctor"
    if interval is not None:
        if interval[0] < plan.start or interval[1] > plan.end:
            return "hours"
        if any(overlaps(interval, b) for b in plan.breaks):
            return "hours"
    return ""


def encode_breaks(breaks: Iterable[tuple[int, int]]) -> str:
    """Breaks as the reserve script reads them: `s-e;s-e` in minutes."""
    return ";".join(f"{s}-{e}" for s, e in breaks)


def free_times_of(
    doctor: doctor_pb2.Doctor,
    plan: DayPlan,
    tokens_held: int,
    intervals: list[tuple[int, int]],
    duration: int = 0,
    not_before: int = 0,
) -> list[str]:
    """What a day offers: nothing when the doctor is absent or every token is held; otherwise the
    free starts on the doctor's slot grid that miss every booking and break and are not past."""
    if not plan.present or tokens_held >= plan.capacity:
        return []
    taken = [*intervals, *plan.breaks]
    return free_times(
        plan.start, plan.end, doctor.slot_minutes, taken, duration=duration, not_before=not_before
    )


def day_view(
    doctor: doctor_pb2.Doctor,
    day: str,
    plan: DayPlan,
    tokens_held: int,
    intervals: list[tuple[int, int]],
    waitlisted: int = 0,
    not_before: int = 0,
) -> doctor_pb2.DoctorDay:
    """not_before: on today's date, the clinic's current minute (earlier starts are not offered)."""
    remaining = max(plan.capacity - tokens_held, 0) if plan.present else 0
    free = free_times_of(doctor, plan, tokens_held, intervals, not_before=not_before)
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
        breaks=[doctor_pb2.TimeRange(start=hhmm(s), end=hhmm(e)) for s, e in plan.breaks],
        on_leave=plan.on_leave,
        hours_source=SOURCES[plan.source],
    )


# -- editing doctors, weekly plans, leave, finding slots ----------------------------------------

DOCTOR_PATHS = (
    "name",
    "specialty",
    "service_ids",
    "daily_capacity",
    "day_start",
    "day_end",
    "slot_minutes",
    "retired",
)
MAX_LEAVE_DAYS = 62
MAX_FIND_DAYS = 31
DEFAULT_FIND_LIMIT, MAX_FIND_LIMIT = 10, 100
MAX_BREAKS = 6


def mask_paths(mask) -> list[str]:
    """A FieldMask's paths as proto field names (`slotMinutes`, as a JSON client may send it, is
    `slot_minutes`)."""
    return [re.sub(r"(?<!^)([A-Z])", r"_\1", p).lower() for p in mask.paths]


def check_mask(paths: Iterable[str], allowed: tuple[str, ...]) -> Violations:
    paths = list(paths)
    if not paths:
        return [("update_mask", f"name the fields to change: {', '.join(allowed)}")]
    return [
        ("update_mask", f"unknown field {p[:40]!r}; one of {', '.join(allowed)}")
        for p in paths
        if p not in allowed
    ]


def apply_doctor_update(
    current: doctor_pb2.Doctor, req: doctor_pb2.UpdateDoctorRequest, catalog: Catalog
) -> tuple[Violations, doctor_pb2.Doctor]:
    """Every bad field of an UpdateDoctor (checked as CreateDoctor checks it), and the doctor with
    the masked fields changed. The code and id never change."""
    paths = mask_paths(req.update_mask)
    bad = check_mask(paths, DOCTOR_PATHS)
    updated = doctor_pb2.Doctor()
    updated.CopyFrom(current)
    for path in paths:
        if path == "service_ids":
            del updated.service_ids[:]
            updated.service_ids.extend(req.service_ids)
        elif path in DOCTOR_PATHS:
            setattr(updated, path, getattr(req, path))
    as_created = doctor_pb2.CreateDoctorRequest(
        code=updated.code,
        name=updated.name,
        specialty=updated.specialty,
        service_ids=updated.service_ids,
        daily_capacity=updated.daily_capacity,
        day_start=updated.day_start,
        day_end=updated.day_end,
        slot_minutes=updated.slot_minutes,
    )
    checked, normalised = validate_doctor(as_created, catalog)
    for field, why in checked:
        base = field.partition("[")[0]
        if base in paths or (base == "day_end" and "day_start" in paths):
            bad.append((field, why))
    for path in ("daily_capacity", "slot_minutes"):  # 0 means "default" on create, not here
        if path in paths and getattr(req, path) == 0:
            bad.append((path, "must be given (a positive number)"))
    if "name" in paths:
        updated.name = normalised.name
    if "specialty" in paths:
        updated.specialty = normalised.specialty
    return bad, updated


def validate_weekly_plan(req: doctor_pb2.SetWeeklyPlanRequest, today: date) -> Violations:
    bad: Violations = []
    bad += check_id(req.doctor_id, "doctor_id")
    bad += check_day(req.effective_from, today, "effective_from")
    if not req.days:
        bad.append(("days", "at least one weekday"))
    seen: set[int] = set()
    for i, d in enumerate(req.days):
        f = f"days[{i}]"
        if d.weekday not in range(1, 8):
            bad.append((f"{f}.weekday", "must be WEEKDAY_MONDAY … WEEKDAY_SUNDAY"))
        elif d.weekday in seen:
            bad.append((f"{f}.weekday", "listed twice"))
        seen.add(d.weekday)
        hours_bad = []
        for name in ("day_start", "day_end"):
            value = getattr(d, name)
            if value and not _is_hhmm(value):
                hours_bad.append((f"{f}.{name}", "must be a time as HH:MM"))
        if not hours_bad and d.day_start and d.day_end and parse_hhmm(d.day_end) <= parse_hhmm(d.day_start):
            hours_bad.append((f"{f}.day_end", "must be after day_start"))
        bad += hours_bad
        if not d.present and (d.breaks or d.day_start or d.day_end):
            bad.append((f"{f}.present", "a day off has no hours or breaks"))
        if len(d.breaks) > MAX_BREAKS:
            bad.append((f"{f}.breaks", f"at most {MAX_BREAKS} breaks"))
            continue
        spans: list[tuple[int, int]] = []
        for j, b in enumerate(d.breaks):
            bf = f"{f}.breaks[{j}]"
            if not (_is_hhmm(b.start) and _is_hhmm(b.end)):
                bad.append((bf, "start and end must be times as HH:MM"))
                continue
            span = (parse_hhmm(b.start), parse_hhmm(b.end))
            if span[1] <= span[0]:
                bad.append((f"{bf}.end", "must be after start"))
            elif any(overlaps(span, other) for other in spans):
                bad.append((bf, "overlaps another break"))
            spans.append(span)
    return bad


def check_plan_against_doctor(req: doctor_pb2.SetWeeklyPlanRequest, doctor: doctor_pb2.Doctor) -> Violations:
    """Hours left to the doctor's defaults must still end after they start, breaks lie inside."""
    bad: Violations = []
    for i, d in enumerate(req.days):
        if not d.present:
            continue
        start = parse_hhmm(d.day_start or doctor.day_start)
        end = parse_hhmm(d.day_end or doctor.day_end)
        if end <= start:
            bad.append((f"days[{i}].day_end", f"must be after the day's start ({hhmm(start)})"))
            continue
        for j, b in enumerate(d.breaks):
            if parse_hhmm(b.start) < start or parse_hhmm(b.end) > end:
                bad.append((f"days[{i}].breaks[{j}]", f"must lie within {hhmm(start)}–{hhmm(end)}"))
    return bad


def validate_leave(
    doctor_id: str, first: str, last: str, note: str, today: date
) -> tuple[Violations, list[date]]:
    """Every bad field of SetLeave, and its dates (first..last inclusive)."""
    bad = check_id(doctor_id, "doctor_id")
    bad += check_day(first, today, "from")
    bad += check_day(last, today, "to")
    if len(note) > MAX_NOTE_LEN:
        bad.append(("note", f"at most {MAX_NOTE_LEN} characters"))
    days: list[date] = []
    if not any(f in ("from", "to") for f, _ in bad):
        a, b = parse_date(first), parse_date(last)
        if b < a:
            bad.append(("to", "must not be before from"))
        elif (b - a).days >= MAX_LEAVE_DAYS:
            bad.append(("to", f"at most {MAX_LEAVE_DAYS} days of leave at once"))
        else:
            days = [a + timedelta(days=i) for i in range((b - a).days + 1)]
    return bad, days


def validate_find_slots(req: doctor_pb2.FindSlotsRequest, today: date) -> tuple[Violations, list[date]]:
    bad: Violations = []
    if not req.service_id and not req.specialty:
        bad.append(("service_id", "give a service_id or a specialty"))
    if len(req.service_id) > MAX_ID_LEN:
        bad.append(("service_id", f"at most {MAX_ID_LEN} characters"))
    if len(req.specialty) > MAX_SPECIALTY_LEN:
        bad.append(("specialty", f"at most {MAX_SPECIALTY_LEN} characters"))
    first_text = req.date_from or today.isoformat()
    last_text = req.date_to or first_text
    bad += check_day(first_text, today, "date_from")
    bad += check_day(last_text, today, "date_to")
    if req.duration_minutes and not MIN_DURATION <= req.duration_minutes <= MAX_DURATION:
        bad.append(("duration_minutes", f"between {MIN_DURATION} and {MAX_DURATION}"))
    if not 0 <= req.limit <= MAX_FIND_LIMIT:
        bad.append(("limit", f"between 1 and {MAX_FIND_LIMIT} (0: {DEFAULT_FIND_LIMIT})"))
    days: list[date] = []
    if not any(f in ("date_from", "date_to") for f, _ in bad):
        a, b = parse_date(first_text), parse_date(last_text)
        if b < a:
            bad.append(("date_to", "must not be before date_from"))
        elif (b - a).days > MAX_FIND_DAYS:
            bad.append(("date_to", f"at most {MAX_FIND_DAYS} days after date_from"))
        else:
            days = [a + timedelta(days=i) for i in range((b - a).days + 1)]
    return bad, days


def check_id(value: str, field: str) -> Violations:
    if not value:
        return [(field, "must not be empty")]
    if len(value) > MAX_ID_LEN:
        return [(field, f"at most {MAX_ID_LEN} characters")]
    return []


def _is_hhmm(text: str) -> bool:
    try:
        parse_hhmm(text)
    except ValueError:
        return False
    return True


# -- places ------------------------------------------------------------------------------------
# The rule the reservation script (schedule_svc/places.py, `fits` and `take` in _HELPERS) applies
# atomically in Redis, stated once in Python so it can be read and tested on its own:
# - a booking with a doctor takes that doctor's lowest free token 1..capacity of the day (none free:
#   `capacity`); an absent doctor gives none (`doctor`);
# - its interval, when it has one, lies inside the day's hours and misses its breaks (`hours`; the
#   day as resolve_day resolves it) and overlaps no interval already taken that day (`slot`);
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
    breaks: tuple[tuple[int, int], ...] = ()  # the resolved day's breaks: no interval overlaps one

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
            if any(overlaps((ask.start, ask.end), b) for b in day.breaks):
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
        breaks=day.breaks,
    )
    return PlacesGrant(token, taken)
