"""The everyday commands: services, book, watch, get, bookings, cancel, quota."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from clinic.v1 import admin_pb2, booking_pb2, notification_pb2
from clinic.v1 import common_pb2 as c
from clinic_common.money import format_minor

from .client import Api, CliError
from .show import as_dict, booking_panel, console, event_line, id_column, print_json, status

GENDERS = {"female": c.GENDER_FEMALE, "male": c.GENDER_MALE, "other": c.GENDER_OTHER}


async def services(api: Api, args: argparse.Namespace) -> int:
    req = booking_pb2.ListServicesRequest(gender=GENDERS.get(args.gender, 0))
    reply = await api.bookings.ListServices(req, metadata=api.md, timeout=10)
    if args.json:
        return print_json([as_dict(s) for s in reply.services])
    table = Table(id_column("id"), "name", "price", "for", "places/day")
    for s in reply.services:
        who = ", ".join(c.Gender.Name(g).removeprefix("GENDER_").lower() for g in s.genders) or "everyone"
        table.add_row(s.id, s.name, format_minor(s.price.amount_minor), who, str(s.daily_capacity))
    console().print(table)
    return 0


async def book(api: Api, args: argparse.Namespace) -> int:
    out = console()
    require(
        bool(args.gender) == bool(args.dob),
        "give --gender and --dob together, or neither for a registered patient",
    )
    patient = c.Patient(id=args.patient)
    if args.gender:
        patient = c.Patient(
            id=args.patient, name=args.name, gender=GENDERS[args.gender], date_of_birth=args.dob
        )
    req = booking_pb2.CreateBookingRequest(
        patient=patient,
        service_ids=args.services,
        appointment_date=args.date or "",
        request_id=args.request_id or "",
        doctor_id=args.doctor,
        start_time=args.at,
        duration_minutes=args.duration,
        note=args.note,
    )
    created = (await api.bookings.CreateBooking(req, metadata=api.md, timeout=10)).booking
    out.print(f"booking [bold]{created.id}[/] created, the saga runs:")
    await _stream(api, created.id, follow=False)
    final = (
        await api.bookings.GetBooking(booking_pb2.GetBookingRequest(booking_id=created.id), metadata=api.md)
    ).booking
    out.print(booking_panel(final))
    return 0 if final.status == c.BOOKING_STATUS_CONFIRMED else 1


async def _stream(api: Api, booking_id: str, follow: bool, as_json: bool = False) -> None:
    out = console()
    req = notification_pb2.WatchBookingRequest(booking_id=booking_id, follow=follow)
    async for item in api.notifications.WatchBooking(req, metadata=api.md):
        if as_json:  # one JSON object per line, as each event arrives
            print(json.dumps(as_dict(item.event), ensure_ascii=False), flush=True)
        else:
            out.print(event_line(item.event))


async def watch(api: Api, args: argparse.Namespace) -> int:
    await _stream(api, args.booking_id, args.follow, args.json)
    return 0


async def get(api: Api, args: argparse.Namespace) -> int:
    b = (
        await api.bookings.GetBooking(
            booking_pb2.GetBookingRequest(booking_id=args.booking_id), metadata=api.md
        )
    ).booking
    if args.json:
        return print_json(as_dict(b))
    out = console()
    out.print(booking_panel(b))
    for event in b.history:
        out.print(event_line(event))
    return 0


async def bookings(api: Api, args: argparse.Namespace) -> int:
    """A patient's bookings, or (staff, admin) a day's or a range's: `--csv` writes the day sheet."""
    from . import desk

    found: list[c.Booking] = []
    token = ""
    require(
        bool(args.patient or args.date or args.date_from or args.doctor),
        "give --patient, --date, --from/--to or --doctor",
    )
    require(not (args.date and (args.date_from or args.date_to)), "give --date or --from/--to, not both")
    while True:
        req = booking_pb2.ListBookingsRequest(
            patient_id=args.patient or "",
            page_size=args.page_size,
            page_token=token,
            date=args.date or "",
            date_from=args.date_from or "",
            date_to=args.date_to or args.date_from or "",
            doctor_id=args.doctor or "",
        )
        reply = await api.bookings.ListBookings(req, metadata=api.md, timeout=10)
        found.extend(reply.bookings)
        token = reply.next_page_token
        if not token:
            break
    if args.json:
        return print_json([as_dict(b) for b in found])
    if args.csv:
        await desk.day_sheet(api, found)
        return 0
    table = Table(id_column("booking"), "reference", "created", "date", "status", "final price", "paid")
    for b in found:
        created = b.created_at.ToDatetime().strftime("%Y-%m-%d %H:%M")
        paid = b.payment.paid.amount_minor - b.payment.refunded.amount_minor
        table.add_row(
            b.id,
            b.reference,
            created,
            b.appointment_date,
            status(b.status),
            format_minor(b.final_price.amount_minor),
            format_minor(paid),
        )
    console().print(table)
    return 0


async def cancel(api: Api, args: argparse.Namespace) -> int:
    req = booking_pb2.CancelBookingRequest(booking_id=args.booking_id, reason=args.reason or "")
    console().print(
        booking_panel((await api.bookings.CancelBooking(req, metadata=api.md, timeout=10)).booking)
    )
    return 0


async def quota(api: Api, args: argparse.Namespace) -> int:
    out = console()
    if args.action == "reset":
        q = (
            await api.admin.ResetQuota(admin_pb2.ResetQuotaRequest(date=args.date or ""), metadata=api.md)
        ).quota
    elif args.action == "verify":
        req = admin_pb2.VerifyQuotaRequest(date=args.date or "", repair=args.repair)
        reply = await api.admin.VerifyQuota(req, metadata=api.md, timeout=60)
        if args.json:
            print_json(as_dict(reply))
            return 0 if reply.consistent or reply.repaired else 1
        verdict = "[green]consistent[/]" if reply.consistent else "[red]inconsistent[/]"
        out.print(
            f"{reply.quota.date}: {verdict} — used {reply.used_before}, bookings holding APPLIED "
            f"{reply.bookings_applied}, in flight {reply.in_flight}"
        )
        for problem in reply.problems:
            out.print(f"  - {problem}")
        if reply.repaired:
            out.print(f"repaired: used is now {reply.quota.used}")
        return 0 if reply.consistent or reply.repaired else 1
    else:
        q = (await api.admin.GetQuota(admin_pb2.GetQuotaRequest(date=args.date or ""), metadata=api.md)).quota
    if args.json:
        return print_json(as_dict(q))
    out.print(f"{q.date}: used {q.used} of {q.limit}, {q.remaining} remaining")
    return 0


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CliError(message)
