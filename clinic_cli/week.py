"""`clinic patients update`, `clinic doctors update|plan|leave|affected`, `clinic slots`: editing the
registry and the doctors, working plans and leave, and finding the next free time."""

from __future__ import annotations

import argparse

from google.protobuf.field_mask_pb2 import FieldMask
from rich.table import Table

from clinic.v1 import booking_pb2, doctor_pb2, patient_pb2
from clinic.v1 import common_pb2 as c

from .client import Api
from .show import console, id_column

WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
CHANNELS = ("email", "sms", "whatsapp")


def add_patient_actions(p: argparse._SubParsersAction, genders: dict[str, int]) -> None:
    update = p.add_parser("update", help="change a patient's fields (only those given)")
    update.add_argument("patient_id")
    update.add_argument("--name")
    update.add_argument("--phone", help="any spelling; refused if another patient holds it")
    update.add_argument("--email", help="'' removes it")
    update.add_argument("--gender", choices=list(genders))
    update.add_argument("--dob", help="YYYY-MM-DD")
    update.add_argument("--contact", help="channels the patient allows: email,sms,whatsapp or none")


def add_doctor_actions(d: argparse._SubParsersAction) -> None:
    update = d.add_parser("update", help="change a doctor's fields (admin; only those given)")
    update.add_argument("doctor_id")
    update.add_argument("--name")
    update.add_argument("--specialty")
    update.add_argument("--services", help="comma-separated service ids (replaces the list)")
    update.add_argument("--capacity", type=int, help="tokens per day")
    update.add_argument("--start", help="HH:MM")
    update.add_argument("--end", help="HH:MM")
    update.add_argument("--slot", type=int, help="minutes per appointment")
    retire = update.add_mutually_exclusive_group()
    retire.add_argument("--retire", action="store_true", help="no new bookings or moves")
    retire.add_argument("--unretire", action="store_true")
    plan = d.add_parser("plan", help="set the doctor's weekly plan from a date (staff)")
    plan.add_argument("doctor_id")
    plan.add_argument("--from", dest="effective_from", required=True, help="YYYY-MM-DD")
    plan.add_argument(
        "--day",
        action="append",
        required=True,
        help="'mon 09:00-17:00 break 13:00-14:00', 'sat 09:00-13:00', 'sun off' (repeat per weekday)",
    )
    leave = d.add_parser("leave", help="mark dates as leave (staff): confirmed bookings are listed")
    leave.add_argument("doctor_id")
    leave.add_argument("--from", dest="first", required=True, help="YYYY-MM-DD")
    leave.add_argument("--to", dest="last", help="YYYY-MM-DD (default: --from)")
    leave.add_argument("--note", default="")
    affected = d.add_parser("affected", help="confirmed bookings on a day the doctor is absent")
    affected.add_argument("doctor_id")
    affected.add_argument("--date", required=True, help="YYYY-MM-DD")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    slots = sub.add_parser("slots", help="the earliest free times across doctors")
    what = slots.add_mutually_exclusive_group(required=True)
    what.add_argument("--service")
    what.add_argument("--specialty")
    slots.add_argument("--from", dest="first", default="", help="YYYY-MM-DD (default today)")
    slots.add_argument("--to", dest="last", default="", help="YYYY-MM-DD (at most 31 days on)")
    slots.add_argument("--duration", type=int, default=0, help="minutes (default each doctor's slot)")
    slots.add_argument("--limit", type=int, default=10)


def parse_plan_day(text: str) -> doctor_pb2.PlanDay:
    """'mon 09:00-17:00 break 13:00-14:00' | 'sun off' | 'tue' (the defaults) -> PlanDay.
    ValueError naming what is wrong; the service checks the times themselves."""
    words = text.replace(",", " ").split()
    if not words or words[0].lower()[:3] not in WEEKDAYS:
        raise ValueError(f"{text!r}: start with a weekday (mon … sun)")
    day = doctor_pb2.PlanDay(weekday=WEEKDAYS[words[0].lower()[:3]], present=True)
    rest = words[1:]
    if rest and rest[0].lower() == "off":
        if len(rest) > 1:
            raise ValueError(f"{text!r}: a day off has nothing after 'off'")
        day.present = False
        return day
    if rest and rest[0].lower() != "break":
        day.day_start, day.day_end = _span(rest.pop(0), text)
    if rest:
        if rest[0].lower() != "break" or len(rest) < 2:
            raise ValueError(f"{text!r}: after the hours, 'break HH:MM-HH:MM …'")
        for span in rest[1:]:
            start, end = _span(span, text)
            day.breaks.add(start=start, end=end)
    return day


def _span(text: str, whole: str) -> tuple[str, str]:
    start, dash, end = text.partition("-")
    if not dash:
        raise ValueError(f"{whole!r}: {text!r} is not HH:MM-HH:MM")
    return start, end


def _consent(text: str) -> c.ContactConsent:
    chosen = {part.strip().lower() for part in text.split(",") if part.strip()} - {"none"}
    unknown = chosen - set(CHANNELS)
    if unknown:
        raise ValueError(
            f"--contact: unknown channel(s) {', '.join(sorted(unknown))}; use {', '.join(CHANNELS)}"
        )
    return c.ContactConsent(**{channel: channel in chosen for channel in CHANNELS})


async def update_patient(api: Api, args, genders: dict[str, int]) -> int:
    req = patient_pb2.UpdatePatientRequest(patient_id=args.patient_id)
    given = {
        "name": args.name,
        "phone": args.phone,
        "email": args.email,
        "date_of_birth": args.dob,
    }
    for field, value in given.items():
        if value is not None:
            setattr(req, field, value)
            req.update_mask.paths.append(field)
    if args.gender:
        req.gender = genders[args.gender]
        req.update_mask.paths.append("gender")
    if args.contact is not None:
        try:
            req.contact.CopyFrom(_consent(args.contact))
        except ValueError as exc:
            console().print(f"[red]{exc}[/]")
            return 2
        req.update_mask.paths.append("contact")
    if not req.update_mask.paths:
        console().print("[red]give at least one field to change[/]")
        return 2
    p = (await api.patients.UpdatePatient(req, metadata=api.md, timeout=10)).patient
    consent = ", ".join(ch for ch in CHANNELS if getattr(p.contact, ch)) or "none"
    console().print(
        f"patient [bold]{p.id}[/] updated ({', '.join(req.update_mask.paths)}); contact: {consent}"
    )
    return 0


async def update_doctor(api: Api, args, table) -> int:
    req = doctor_pb2.UpdateDoctorRequest(doctor_id=args.doctor_id, update_mask=FieldMask())
    given = {
        "name": args.name,
        "specialty": args.specialty,
        "daily_capacity": args.capacity,
        "day_start": args.start,
        "day_end": args.end,
        "slot_minutes": args.slot,
    }
    for field, value in given.items():
        if value is not None:
            setattr(req, field, value)
            req.update_mask.paths.append(field)
    if args.services is not None:
        req.service_ids.extend(s.strip() for s in args.services.split(",") if s.strip())
        req.update_mask.paths.append("service_ids")
    if args.retire or args.unretire:
        req.retired = bool(args.retire)
        req.update_mask.paths.append("retired")
    if not req.update_mask.paths:
        console().print("[red]give at least one field to change[/]")
        return 2
    doctor = (await api.doctors.UpdateDoctor(req, metadata=api.md, timeout=10)).doctor
    console().print(f"doctor [bold]{doctor.id}[/] updated" + (" (retired)" if doctor.retired else ""))
    console().print(table([doctor]))
    return 0


async def set_plan(api: Api, args) -> int:
    try:
        days = [parse_plan_day(text) for text in args.day]
    except ValueError as exc:
        console().print(f"[red]--day {exc}[/]")
        return 2
    req = doctor_pb2.SetWeeklyPlanRequest(
        doctor_id=args.doctor_id, effective_from=args.effective_from, days=days
    )
    plan = (await api.doctors.SetWeeklyPlan(req, metadata=api.md, timeout=10)).plan
    table = Table("weekday", "hours", "breaks", title=f"{plan.doctor_id} from {plan.effective_from}")
    for d in plan.days:
        name = doctor_pb2.Weekday.Name(d.weekday).removeprefix("WEEKDAY_").title()
        hours = "off" if not d.present else f"{d.day_start or 'default'}-{d.day_end or 'default'}"
        table.add_row(name, hours, ", ".join(f"{b.start}-{b.end}" for b in d.breaks) or "-")
    console().print(table)
    console().print("weekdays not listed keep the doctor's defaults")
    return 0


async def set_leave(api: Api, args) -> int:
    fields = {"from": args.first, "to": args.last or args.first}
    req = doctor_pb2.SetLeaveRequest(doctor_id=args.doctor_id, note=args.note, **fields)
    reply = await api.doctors.SetLeave(req, metadata=api.md, timeout=30)
    for day in reply.days:
        state = "on leave" if not day.present else "present (its own availability stands)"
        console().print(f"{day.doctor_id} {day.date}: {state}")
    print_affected(reply.affected_bookings)
    return 0


def print_affected(affected) -> None:
    if not affected:
        console().print("no confirmed bookings are affected")
        return
    table = Table(id_column("booking"), "date", "time", "token", title="affected bookings: move or cancel")
    for a in affected:
        table.add_row(a.booking_id, a.date, a.start_time or "-", str(a.token))
    console().print(table)


async def affected(api: Api, args) -> int:
    """The confirmed bookings of a day the doctor is absent from (SetAvailability or leave)."""
    day = (
        await api.doctors.GetDoctorDay(
            doctor_pb2.GetDoctorDayRequest(doctor_id=args.doctor_id, date=args.date),
            metadata=api.md,
            timeout=10,
        )
    ).day
    bookings, token = [], ""
    while True:
        req = booking_pb2.ListBookingsRequest(
            doctor_id=args.doctor_id,
            date=args.date,
            status=c.BOOKING_STATUS_CONFIRMED,
            page_size=100,
            page_token=token,
        )
        page = await api.bookings.ListBookings(req, metadata=api.md, timeout=10)
        bookings += page.bookings
        token = page.next_page_token
        if not token:
            break
    if day.present:
        console().print(
            f"{args.doctor_id} is present on {args.date}: {len(bookings)} confirmed, none affected"
        )
        return 0
    print_affected(
        [
            doctor_pb2.AffectedBooking(
                booking_id=b.id, date=b.appointment_date, start_time=b.start_time, token=b.token
            )
            for b in sorted(bookings, key=lambda b: b.token)
        ]
    )
    return 0


async def slots(api: Api, args) -> int:
    req = doctor_pb2.FindSlotsRequest(
        service_id=args.service or "",
        specialty=args.specialty or "",
        date_from=args.first,
        date_to=args.last,
        duration_minutes=args.duration,
        limit=args.limit,
    )
    found = (await api.doctors.FindSlots(req, metadata=api.md, timeout=20)).slots
    table = Table("date", "time", id_column("doctor"))
    for s in found:
        table.add_row(s.date, s.start_time, s.doctor_id)
    console().print(table)
    return 0 if found else 1
