"""`clinic patients|doctors|availability|slots`: the registry and doctors' days, for the front desk."""

from __future__ import annotations

import argparse

from rich.table import Table

from clinic.v1 import common_pb2 as c
from clinic.v1 import doctor_pb2, patient_pb2

from . import week
from .client import Api
from .show import console, id_column

GENDERS = {"female": c.GENDER_FEMALE, "male": c.GENDER_MALE, "other": c.GENDER_OTHER}
COMMANDS = ("patients", "doctors", "availability", "slots")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    patients = sub.add_parser("patients", help="the patient registry: register or find (staff, admin)")
    p = patients.add_subparsers(dest="action", required=True)
    register = p.add_parser("register", help="register a patient (a known phone returns that patient)")
    register.add_argument("--name", required=True)
    register.add_argument("--phone", required=True, help="any spelling; stored as E.164")
    register.add_argument("--email", default="")
    register.add_argument("--gender", choices=list(GENDERS), required=True)
    register.add_argument("--dob", required=True, help="YYYY-MM-DD")
    find = p.add_parser("find", help="find patients by phone or email")
    key = find.add_mutually_exclusive_group(required=True)
    key.add_argument("--phone")
    key.add_argument("--email")
    week.add_patient_actions(p, GENDERS)

    doctors = sub.add_parser("doctors", help="doctors: add (admin), list, a doctor's day")
    d = doctors.add_subparsers(dest="action", required=True)
    add = d.add_parser("add", help="add a doctor")
    add.add_argument("--code", required=True, help="unique, e.g. DR-RAO")
    add.add_argument("--name", required=True)
    add.add_argument("--specialty", default="")
    add.add_argument("--services", required=True, help="comma-separated service ids the doctor performs")
    add.add_argument("--capacity", type=int, default=0, help="tokens per day (default 10)")
    add.add_argument("--start", default="", help="HH:MM (default 09:00)")
    add.add_argument("--end", default="", help="HH:MM (default 17:00)")
    add.add_argument("--slot", type=int, default=0, help="minutes per appointment (default 15)")
    listing = d.add_parser("list", help="doctors, optionally by service or specialty")
    listing.add_argument("--service", default="")
    listing.add_argument("--specialty", default="")
    listing.add_argument("--all", action="store_true", help="retired doctors too")
    day = d.add_parser("day", help="a doctor's day: capacity, booked, remaining, free times")
    day.add_argument("doctor_id")
    day.add_argument("--date", default="", help="YYYY-MM-DD (default today)")
    week.add_doctor_actions(d)
    week.add_parsers(sub)

    availability = sub.add_parser("availability", help="set a doctor's availability for a date (staff)")
    a = availability.add_subparsers(dest="action", required=True)
    set_ = a.add_parser("set", help="the last write for a date stands")
    set_.add_argument("doctor_id")
    set_.add_argument("--date", required=True, help="YYYY-MM-DD")
    set_.add_argument("--absent", action="store_true", help="the doctor is not in: new bookings are refused")
    set_.add_argument("--note", default="")
    set_.add_argument("--start", help="HH:MM for that date only")
    set_.add_argument("--end", help="HH:MM for that date only")
    set_.add_argument("--capacity", type=int, help="tokens for that date only")


async def run(api: Api, args: argparse.Namespace) -> int:
    handler = {
        ("patients", "register"): _register,
        ("patients", "find"): _find,
        ("doctors", "add"): _add_doctor,
        ("doctors", "list"): _list_doctors,
        ("doctors", "day"): _day,
        ("availability", "set"): _set_availability,
        ("patients", "update"): lambda api, args: week.update_patient(api, args, GENDERS),
        ("doctors", "update"): lambda api, args: week.update_doctor(api, args, _doctors_table),
        ("doctors", "plan"): week.set_plan,
        ("doctors", "leave"): week.set_leave,
        ("doctors", "affected"): week.affected,
        ("slots", None): week.slots,
    }[(args.command, getattr(args, "action", None))]
    return await handler(api, args)


async def _register(api: Api, args) -> int:
    req = patient_pb2.RegisterPatientRequest(
        name=args.name,
        phone=args.phone,
        email=args.email,
        gender=GENDERS[args.gender],
        date_of_birth=args.dob,
    )
    reply = await api.patients.RegisterPatient(req, metadata=api.md, timeout=10)
    verb = "registered" if reply.created else "already registered (this phone names them)"
    console().print(f"patient [bold]{reply.patient.id}[/] {verb}")
    console().print(_patients_table([reply.patient]))
    return 0


async def _find(api: Api, args) -> int:
    req = patient_pb2.FindPatientsRequest(phone=args.phone or "", email=args.email or "")
    reply = await api.patients.FindPatients(req, metadata=api.md, timeout=10)
    console().print(_patients_table(reply.patients))
    return 0 if reply.patients else 1


def _patients_table(patients) -> Table:
    table = Table(id_column("patient"), "name", "gender", "born", "phone", "email")
    for p in patients:
        gender = c.Gender.Name(p.gender).removeprefix("GENDER_").lower()
        table.add_row(p.id, p.name, gender, p.date_of_birth, p.phone, p.email)
    return table


async def _add_doctor(api: Api, args) -> int:
    req = doctor_pb2.CreateDoctorRequest(
        code=args.code,
        name=args.name,
        specialty=args.specialty,
        service_ids=[s.strip() for s in args.services.split(",") if s.strip()],
        daily_capacity=args.capacity,
        day_start=args.start,
        day_end=args.end,
        slot_minutes=args.slot,
    )
    doctor = (await api.doctors.CreateDoctor(req, metadata=api.md, timeout=10)).doctor
    console().print(f"doctor [bold]{doctor.id}[/] added")
    console().print(_doctors_table([doctor]))
    return 0


async def _list_doctors(api: Api, args) -> int:
    req = doctor_pb2.ListDoctorsRequest(
        service_id=args.service, specialty=args.specialty, include_retired=args.all
    )
    console().print(_doctors_table((await api.doctors.ListDoctors(req, metadata=api.md, timeout=10)).doctors))
    return 0


def _doctors_table(doctors) -> Table:
    table = Table(id_column("doctor"), "code", "name", "specialty", "services", "tokens/day", "hours", "slot")
    for d in doctors:
        table.add_row(
            d.id,
            d.code,
            d.name + (" (retired)" if d.retired else ""),
            d.specialty,
            ", ".join(d.service_ids),
            str(d.daily_capacity),
            f"{d.day_start}-{d.day_end}",
            f"{d.slot_minutes} min",
        )
    return table


async def _day(api: Api, args) -> int:
    req = doctor_pb2.GetDoctorDayRequest(doctor_id=args.doctor_id, date=args.date)
    _print_day((await api.doctors.GetDoctorDay(req, metadata=api.md, timeout=10)).day)
    return 0


async def _set_availability(api: Api, args) -> int:
    req = doctor_pb2.SetAvailabilityRequest(doctor_id=args.doctor_id, date=args.date, present=not args.absent)
    req.note = args.note
    if args.start:
        req.day_start = args.start
    if args.end:
        req.day_end = args.end
    if args.capacity is not None:
        req.daily_capacity = args.capacity
    reply = await api.doctors.SetAvailability(req, metadata=api.md, timeout=10)
    _print_day(reply.day)
    if not reply.day.present:
        week.print_affected(reply.affected_bookings)
    return 0


def _print_day(day: doctor_pb2.DoctorDay) -> None:
    out = console()
    presence = "[green]present[/]" if day.present else "[red]absent[/]"
    note = f" — {day.note}" if day.note else ""
    source = doctor_pb2.HoursSource.Name(day.hours_source).removeprefix("HOURS_SOURCE_").lower()
    leave = " (on leave)" if day.on_leave else ""
    out.print(
        f"{day.doctor_id} on {day.date}: {presence}{leave}{note}, {day.day_start}-{day.day_end}"
        + (f" (from {source.replace('_', ' ')})" if day.hours_source else "")
    )
    if day.breaks:
        out.print("breaks: " + ", ".join(f"{b.start}-{b.end}" for b in day.breaks))
    counts = f"capacity {day.capacity}, booked {day.booked}, remaining {day.remaining}"
    out.print(f"{counts}, waitlisted {day.waitlisted}")
    out.print("free times: " + (" ".join(day.free_times) or "none"))
