"""Pure mappings between the clinic's protos and FHIR R4 resources (plain dicts, JSON-ready).

No grpc, HTTP or I/O here: handlers fetch through the public gRPC API, these functions shape the
answer, and fhir.resources validates it (fhir_svc/handlers.py). The booking rules stay in the
services: a FHIR booking is a CreateBookingRequest, nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from clinic.v1 import booking_pb2, common_pb2, doctor_pb2, frontdesk_pb2
from clinic_common.errors import InvalidArgument
from clinic_common.timeutil import hhmm, parse_hhmm

FHIR_VERSION = "4.0.1"
SERVICE_SYSTEM = "urn:clinic:service"  # serviceType codings: the catalog's service ids
PHONE_SYSTEM = "urn:clinic:phone"  # Patient.identifier: the registry's E.164 phone
CODE_SYSTEM = "urn:clinic:doctor-code"  # Practitioner.identifier: the clinic's doctor code
REQUEST_SYSTEM = "urn:clinic:request-id"  # Appointment.identifier: CreateBooking's idempotency key
MAX_SLOT_DAYS = 31  # a Slot search spans at most this many days
DEFAULT_COUNT = 20
MAX_COUNT = 100

B = common_pb2
BOOKING_STATUS = {
    B.BOOKING_STATUS_PENDING: "pending",
    B.BOOKING_STATUS_CONFIRMED: "booked",
    B.BOOKING_STATUS_REJECTED: "cancelled",
    B.BOOKING_STATUS_CANCELLED: "cancelled",
    B.BOOKING_STATUS_WAITLISTED: "waitlist",
}
V = frontdesk_pb2
VISIT_STATUS = {  # a confirmed booking once the front desk has seen the patient
    V.VISIT_STATE_WAITING: "arrived",
    V.VISIT_STATE_IN_CONSULTATION: "arrived",
    V.VISIT_STATE_DONE: "fulfilled",
    V.VISIT_STATE_NO_SHOW: "noshow",
}
# FHIR status -> the booking status ListBookings can filter on (None: filtered here, after the call)
STATUS_FILTER: dict[str, int | None] = {
    "pending": B.BOOKING_STATUS_PENDING,
    "booked": B.BOOKING_STATUS_CONFIRMED,
    "waitlist": B.BOOKING_STATUS_WAITLISTED,
    "cancelled": None,
    "arrived": B.BOOKING_STATUS_CONFIRMED,
    "fulfilled": B.BOOKING_STATUS_CONFIRMED,
    "noshow": B.BOOKING_STATUS_CONFIRMED,
}
GENDER = {B.GENDER_FEMALE: "female", B.GENDER_MALE: "male", B.GENDER_OTHER: "other"}
_SLOT_ID = re.compile(r"^(?P<doctor>[A-Za-z0-9\-.]+)\.(?P<day>\d{8})\.(?P<start>\d{4})$")
_DATE = re.compile(r"^(ge|gt|le|lt|eq)?(\d{4}-\d{2}-\d{2})(T[0-9:.+\-Z]*)?$")


# ---- resources -----------------------------------------------------------------------------


def patient(p: common_pb2.Patient) -> dict:
    out: dict = {"resourceType": "Patient", "id": p.id, "active": True}
    if p.phone:
        out["identifier"] = [{"system": PHONE_SYSTEM, "value": p.phone}]
        out["telecom"] = [{"system": "phone", "value": p.phone, "use": "mobile"}]
    if p.email:
        out.setdefault("telecom", []).append({"system": "email", "value": p.email})
    if p.name:
        out["name"] = [{"text": p.name}]
    if p.gender in GENDER:
        out["gender"] = GENDER[p.gender]
    if p.date_of_birth:
        out["birthDate"] = p.date_of_birth
    return out


def practitioner(d: doctor_pb2.Doctor) -> dict:
    out: dict = {
        "resourceType": "Practitioner",
        "id": d.id,
        "active": True,
        "identifier": [{"system": CODE_SYSTEM, "value": d.code}],
        "name": [{"text": d.name}],
    }
    if d.specialty:
        out["qualification"] = [{"code": {"text": d.specialty}}]
    return out


def schedule(d: doctor_pb2.Doctor) -> dict:
    return {
        "resourceType": "Schedule",
        "id": d.id,
        "active": True,
        "serviceType": [_service(sid) for sid in d.service_ids],
        "actor": [{"reference": f"Practitioner/{d.id}", "display": d.name}],
        "comment": f"{d.day_start}-{d.day_end}, {d.slot_minutes}-minute slots, {d.daily_capacity} tokens",
    }


def slot_id(doctor_id: str, day: str, start: str) -> str:
    return f"{doctor_id}.{day.replace('-', '')}.{start.replace(':', '')}"


def parse_slot_id(value: str) -> tuple[str, str, str]:
    """(doctor_id, YYYY-MM-DD, HH:MM) of a Slot id; InvalidArgument if it is not one."""
    match = _SLOT_ID.match(value)
    if not match:
        raise InvalidArgument([("id", "a Slot id is <doctor_id>.<YYYYMMDD>.<HHMM>")])
    d, s = match["day"], match["start"]
    return match["doctor"], f"{d[:4]}-{d[4:6]}-{d[6:]}", f"{s[:2]}:{s[2:]}"


def slots(day: doctor_pb2.DoctorDay, slot_minutes: int, tz: ZoneInfo) -> list[dict]:
    """Every slot of a doctor's day: free where the day lists a free time, busy otherwise."""
    free = set(day.free_times)
    first, last = parse_hhmm(day.day_start), parse_hhmm(day.day_end)
    out = []
    for start in range(first, last - slot_minutes + 1, slot_minutes):
        status = "free" if hhmm(start) in free else ("busy" if day.present else "busy-unavailable")
        out.append(slot(day.doctor_id, day.date, hhmm(start), slot_minutes, status, tz))
    return out


def slot(doctor_id: str, day: str, start: str, minutes: int, status: str, tz: ZoneInfo) -> dict:
    begin = _at(day, start, tz)
    return {
        "resourceType": "Slot",
        "id": slot_id(doctor_id, day, start),
        "schedule": {"reference": f"Schedule/{doctor_id}"},
        "status": status,
        "start": begin.isoformat(),
        "end": (begin + timedelta(minutes=minutes)).isoformat(),
    }


def appointment_status(b: common_pb2.Booking, visit: int = 0) -> str:
    if b.status == B.BOOKING_STATUS_CONFIRMED and visit in VISIT_STATUS:
        return VISIT_STATUS[visit]
    return BOOKING_STATUS.get(b.status, "proposed")


def appointment(b: common_pb2.Booking, tz: ZoneInfo, visit: int = 0) -> dict:
    status = appointment_status(b, visit)
    out: dict = {
        "resourceType": "Appointment",
        "id": b.id,
        "status": status,
        "serviceType": [_service(s.service_id, s.name) for s in b.services],
        "participant": [
            {
                "actor": {
                    "reference": f"Patient/{b.patient.id}",
                    **({"display": b.patient.name} if b.patient.name else {}),
                },
                "required": "required",
                "status": "accepted",
            }
        ],
    }
    if b.doctor_id:
        out["participant"].append(
            {
                "actor": {"reference": f"Practitioner/{b.doctor_id}"},
                "required": "required",
                "status": "accepted",
            }
        )
    if b.request_id:
        out["identifier"] = [{"system": REQUEST_SYSTEM, "value": b.request_id}]
    if b.note:  # the reason for the visit (PHI: shown to whoever may read the booking, never logged)
        out["reasonCode"] = [{"text": b.note}]
    if b.start_time:
        begin = _at(b.appointment_date, b.start_time, tz)
        out["start"] = begin.isoformat()
        out["end"] = (begin + timedelta(minutes=b.duration_minutes)).isoformat()
        out["minutesDuration"] = b.duration_minutes
        if b.doctor_id:
            out["slot"] = [{"reference": f"Slot/{slot_id(b.doctor_id, b.appointment_date, b.start_time)}"}]
    elif b.appointment_date:  # a day's visit without a time: the day it is on
        out["requestedPeriod"] = [{"start": b.appointment_date, "end": b.appointment_date}]
    if b.HasField("created_at"):
        out["created"] = b.created_at.ToDatetime().replace(microsecond=0).isoformat() + "Z"
    if b.status in (B.BOOKING_STATUS_REJECTED, B.BOOKING_STATUS_CANCELLED):
        reason = B.RejectionReason.Name(b.rejection_reason) if b.rejection_reason else ""
        text = b.status_message or reason or B.BookingStatus.Name(b.status)
        coding = [{"system": "urn:clinic:rejection-reason", "code": reason}] if reason else []
        out["cancelationReason"] = {"text": text, **({"coding": coding} if coding else {})}
    elif b.status_message:
        out["comment"] = b.status_message
    return out


def _service(service_id: str, name: str = "") -> dict:
    coding = {"system": SERVICE_SYSTEM, "code": service_id, **({"display": name} if name else {})}
    return {"coding": [coding]}


def _at(day: str, start: str, tz: ZoneInfo) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.strptime(start, "%H:%M").time(), tzinfo=tz)


# ---- a booking from FHIR -------------------------------------------------------------------


@dataclass(frozen=True)
class NewAppointment:
    patient_id: str
    doctor_id: str
    service_ids: tuple[str, ...]
    date: str
    start_time: str
    duration_minutes: int
    request_id: str
    note: str = ""


def reference_id(reference: str, kind: str) -> str:
    """The id of "Kind/<id>" (also a full URL ending so); "" if it names another kind."""
    head, _, rid = reference.rstrip("/").rpartition("/")
    return rid if head.rpartition("/")[2] == kind and rid else ""


def new_appointment(resource: Mapping, tz: ZoneInfo) -> NewAppointment:
    """A POSTed Appointment as the booking it asks for; the violations use CreateBooking's field names."""
    bad: list[tuple[str, str]] = []
    if resource.get("status") != "proposed":
        bad.append(("status", "a new Appointment is proposed; the saga decides booked or cancelled"))
    patients, doctors = [], []
    for p in resource.get("participant") or []:
        ref = ((p or {}).get("actor") or {}).get("reference", "")
        if reference_id(ref, "Patient"):
            patients.append(reference_id(ref, "Patient"))
        elif reference_id(ref, "Practitioner"):
            doctors.append(reference_id(ref, "Practitioner"))
    if len(patients) != 1:
        bad.append(("patient.id", "exactly one participant is Patient/<patient_id>"))
    if len(doctors) > 1:
        bad.append(("doctor_id", "at most one participant is Practitioner/<doctor_id>"))
    services = tuple(
        c.get("code", "")
        for t in resource.get("serviceType") or []
        for c in (t or {}).get("coding") or []
        if c.get("system") in (None, SERVICE_SYSTEM)
    )
    if not services:
        bad.append(("service_ids", "serviceType[].coding[].code names the catalog's services"))
    day, start_time, minutes = "", "", 0
    if resource.get("start"):
        begin = _datetime(resource["start"], tz)
        if begin is None:
            bad.append(("start_time", "start is an instant with its offset, e.g. 2026-12-04T10:30:00+05:30"))
        else:
            day, start_time = begin.date().isoformat(), begin.strftime("%H:%M")
            if resource.get("end"):
                end = _datetime(resource["end"], tz)
                if end is None or end <= begin:
                    bad.append(("duration_minutes", "end is an instant after start"))
                else:
                    minutes = int((end - begin).total_seconds() // 60)
            elif resource.get("minutesDuration") is not None:
                minutes = resource["minutesDuration"]
                if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes <= 0:
                    bad.append(("duration_minutes", "minutesDuration is a positive integer"))
                    minutes = 0
        if not doctors:
            bad.append(("doctor_id", "a timed visit needs a Practitioner participant"))
    notes = [
        r.get("text", "") for r in resource.get("reasonCode") or [] if isinstance(r, dict) and r.get("text")
    ]
    request_id = ""
    for ident in resource.get("identifier") or []:
        if (ident or {}).get("system") in (None, REQUEST_SYSTEM) and ident.get("value"):
            request_id = ident["value"]
    if bad:
        raise InvalidArgument(bad)
    return NewAppointment(
        patient_id=patients[0],
        doctor_id=doctors[0] if doctors else "",
        service_ids=services,
        date=day,
        start_time=start_time,
        duration_minutes=minutes,
        request_id=request_id,
        note="; ".join(notes),
    )


def create_request(new: NewAppointment, who: common_pb2.Patient) -> booking_pb2.CreateBookingRequest:
    return booking_pb2.CreateBookingRequest(
        patient=who,
        service_ids=list(new.service_ids),
        appointment_date=new.date,
        request_id=new.request_id,
        doctor_id=new.doctor_id,
        start_time=new.start_time,
        duration_minutes=new.duration_minutes,
        note=new.note,
    )


def _datetime(text: str, tz: ZoneInfo) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # FHIR instants carry their offset
    return moment.astimezone(tz)


# ---- search parameters ---------------------------------------------------------------------


def date_range(values: Iterable[str], today: date, param: str = "start") -> tuple[date, date]:
    """[first, last] days of `start=ge…&start=lt…` (or `date=`); a single day by default."""
    first, last = today, None
    for value in values:
        match = _DATE.match(value)
        if not match:
            raise InvalidArgument([(param, "a date: [ge|gt|le|lt|eq]YYYY-MM-DD")])
        prefix, day = match[1] or "eq", date.fromisoformat(match[2])
        if prefix == "eq":
            first, last = day, day
        elif prefix == "ge":
            first = day
        elif prefix == "gt":
            first = day + timedelta(days=1) if not match[3] else day
        elif prefix == "le":
            last = day
        else:  # lt: a time on that day still counts that day's earlier slots
            last = day - timedelta(days=1) if not match[3] else day
    last = first if last is None else last
    if last < first:
        raise InvalidArgument([(param, "the range is empty")])
    if (last - first).days >= MAX_SLOT_DAYS:
        raise InvalidArgument([(param, f"at most {MAX_SLOT_DAYS} days at a time")])
    return first, last


def days(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def count(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_COUNT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_COUNT:
        raise InvalidArgument([("page_size", f"_count is 1-{MAX_COUNT}")])
    return int(raw)


def bundle(
    entries: list[dict], base: str, self_link: str, next_link: str = "", total: int | None = None
) -> dict:
    out: dict = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "self", "url": self_link}],
        "entry": [
            {"fullUrl": f"{base}/{e['resourceType']}/{e['id']}", "resource": e, "search": {"mode": "match"}}
            for e in entries
        ],
    }
    if next_link:
        out["link"].append({"relation": "next", "url": next_link})
    if total is not None:
        out["total"] = total
    return out


def page(items: list[dict], offset: int, size: int) -> tuple[list[dict], int | None]:
    """One page of an in-memory result and the next page's offset (None: last page)."""
    chunk = items[offset : offset + size]
    return chunk, (offset + size if offset + size < len(items) else None)


def name_matches(text: str, wanted: str) -> bool:
    """FHIR string search: case-insensitive, matching the start of any word of the name."""
    wanted = wanted.strip().casefold()
    return any(word.startswith(wanted) for word in [text.casefold(), *text.casefold().split()])


# ---- errors ------------------------------------------------------------------------------


ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    412: "conflict",
    422: "business-rule",
    429: "throttled",
    503: "transient",
    504: "timeout",
}


def operation_outcome(status: int, message: str, violations: Iterable[tuple[str, str]] = ()) -> dict:
    """One issue per BadRequest field violation (expression = the gRPC field name), else one issue."""
    code = ISSUE_CODE.get(status, "exception")
    issues = [
        {"severity": "error", "code": code, "diagnostics": description, "expression": [field]}
        for field, description in violations
    ]
    return {
        "resourceType": "OperationOutcome",
        "issue": issues or [{"severity": "error", "code": code, "diagnostics": message or code}],
    }
