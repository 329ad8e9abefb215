"""Money and paper at the desk: the day sheet (CSV), the day's summary, receipts, payments, refunds."""

from __future__ import annotations

import argparse
import csv
import os
import sys
import uuid
from datetime import UTC
from zoneinfo import ZoneInfo

import grpc
from rich.table import Table

from clinic.v1 import admin_pb2, booking_pb2, doctor_pb2, patient_pb2
from clinic.v1 import common_pb2 as c
from clinic_common.config import ConfigError
from clinic_common.money import format_minor, parse_major
from gateway.web import clinic_name

from .client import Api, CliError
from .show import as_dict, booking_panel, console, print_json, status

COMMANDS = ("summary", "receipt", "pay", "refund")
METHODS = {"cash": 1, "card": 2, "upi": 3, "insurance": 4, "other": 5}
CSV_COLUMNS = (
    "reference",
    "date",
    "time",
    "token",
    "doctor",
    "patient",
    "phone",
    "services",
    "status",
    "attendance",
    "final_price",
    "paid",
)


def add_parsers(sub: argparse._SubParsersAction, as_json: argparse.ArgumentParser) -> None:
    summary = sub.add_parser("summary", parents=[as_json], help="the day's figures (admin)")
    summary.add_argument("--date", default="", help="YYYY-MM-DD (default today)")
    receipt = sub.add_parser("receipt", help="a printable receipt for a booking")
    receipt.add_argument("booking", help="reference or booking id")
    pay = sub.add_parser("pay", help="record a payment (staff, admin)")
    pay.add_argument("booking", help="reference or booking id")
    pay.add_argument("amount", help="in rupees, e.g. 500.00")
    pay.add_argument("--method", choices=list(METHODS), required=True)
    pay.add_argument("--reference", default="", help="card slip, UPI transaction id ...")
    pay.add_argument("--request-id", default="", help="retry with the same id: it records once")
    refund = sub.add_parser("refund", help="refund a payment (admin)")
    refund.add_argument("booking", help="reference or booking id")
    refund.add_argument("amount", help="in rupees, e.g. 500.00")
    refund.add_argument("--reason", default="")
    refund.add_argument("--request-id", default="")


async def run(api: Api, args: argparse.Namespace) -> int:
    return await {"summary": _summary, "receipt": _receipt, "pay": _pay, "refund": _refund}[args.command](
        api, args
    )


def _amount(text: str) -> c.Money:
    try:
        return c.Money(currency="INR", amount_minor=parse_major(text))
    except ValueError as exc:
        raise CliError(str(exc), 2) from None


async def _pay(api: Api, args: argparse.Namespace) -> int:
    req = booking_pb2.RecordPaymentRequest(
        booking_id=args.booking,
        amount=_amount(args.amount),
        method=METHODS[args.method],
        reference=args.reference,
        request_id=args.request_id or uuid.uuid4().hex,
    )
    b = (await api.bookings.RecordPayment(req, metadata=api.md, timeout=10)).booking
    console().print(booking_panel(b))
    return 0


async def _refund(api: Api, args: argparse.Namespace) -> int:
    req = booking_pb2.RefundPaymentRequest(
        booking_id=args.booking,
        amount=_amount(args.amount),
        reason=args.reason,
        request_id=args.request_id or uuid.uuid4().hex,
    )
    b = (await api.bookings.RefundPayment(req, metadata=api.md, timeout=10)).booking
    console().print(booking_panel(b))
    return 0


async def _summary(api: Api, args: argparse.Namespace) -> int:
    req = admin_pb2.GetDaySummaryRequest(date=args.date)
    s = (await api.admin.GetDaySummary(req, metadata=api.md, timeout=30)).summary
    if args.json:
        return print_json(as_dict(s))
    out = console()
    out.print(f"[bold]Day summary {s.date}[/]: {s.bookings} bookings")
    for count in s.by_status:
        out.print(f"  {status(count.status):<12} {count.count}")
    out.print(f"seen {s.seen}, no-shows {s.no_shows}")
    out.print(f"cancellations {s.cancellations} (late {s.late_cancellations})")
    taken, back = format_minor(s.payments.amount_minor), format_minor(s.refunds.amount_minor)
    out.print(
        f"payments {taken} less refunds {back} = {format_minor(s.net.amount_minor)};"
        f" refunds still due {format_minor(s.refund_due.amount_minor)}"
    )
    out.print(f"discounts given {s.discounts} ({format_minor(s.discount_amount.amount_minor)})")
    if s.doctors:
        table = Table("doctor", "capacity", "booked", "seen")
        for d in s.doctors:
            table.add_row(d.doctor_id, str(d.capacity), str(d.booked), str(d.seen))
        out.print(table)
    return 0


async def _receipt(api: Api, args: argparse.Namespace) -> int:
    try:  # the page's rule (gateway/web.py): the same name heads both receipts
        name = clinic_name(os.environ)
    except ConfigError as exc:
        raise CliError(str(exc), 2) from None
    b = (
        await api.bookings.GetBooking(booking_pb2.GetBookingRequest(booking_id=args.booking), metadata=api.md)
    ).booking
    print(receipt_text(b, name))
    return 0


def receipt_text(b: c.Booking, clinic_name: str) -> str:
    """A plain-text receipt (prints on any printer): clinic, reference, services, discount, paid, method."""
    width = 44

    def line(left: str, right: str = "") -> str:
        return f"{left:<{width - len(right)}}{right}"

    rows = [clinic_name.center(width), "RECEIPT".center(width), "-" * width]
    rows.append(line("Reference", b.reference or b.id))
    rows.append(line("Date", b.appointment_date + (f" {b.start_time}" if b.start_time else "")))
    if b.token:
        rows.append(line("Token", str(b.token)))
    rows.append(line("Patient", b.patient.name.split(" ")[0] if b.patient.name else b.patient.id))
    rows.append("-" * width)
    for s in b.services:
        rows.append(line(s.name[: width - 14], format_minor(s.price.amount_minor)))
    if b.discount.outcome == c.DISCOUNT_OUTCOME_APPLIED:
        discount = "-" + format_minor(b.discount.amount.amount_minor)
        rows.append(line(f"Discount {b.discount.percent}%", discount))
    rows.append(line("Total", format_minor(b.final_price.amount_minor)))
    rows.append("-" * width)
    methods = {v: k for k, v in METHODS.items()}
    tz = ZoneInfo(os.environ.get("CLINIC_TIMEZONE", "").strip() or "Asia/Kolkata")
    for e in b.payment.entries:
        when = e.at.ToDatetime(tzinfo=UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M")
        if e.kind == c.PAYMENT_ENTRY_KIND_PAYMENT:
            rows.append(line(f"Paid {when} {methods.get(e.method, '')}", format_minor(e.amount.amount_minor)))
            if e.reference:
                rows.append(f"  ref {e.reference}")
        else:
            rows.append(line(f"Refund {when}", "-" + format_minor(e.amount.amount_minor)))
    paid = b.payment.paid.amount_minor - b.payment.refunded.amount_minor
    rows.append(line("Paid", format_minor(paid)))
    rows.append(line("Balance", format_minor(max(b.final_price.amount_minor - paid, 0))))
    if b.payment.refund_due.amount_minor:
        rows.append(line("Refund due", format_minor(b.payment.refund_due.amount_minor)))
    rows.append(line("Status", status(b.status)))
    return "\n".join(rows)


# -- the day sheet --------------------------------------------------------------------------------


async def day_sheet(api: Api, found: list[c.Booking], out=None) -> None:
    """Bookings as CSV, with the doctor's name and the registered patient's phone looked up."""
    doctors = {
        d.id: d.name
        for d in (await api.doctors.ListDoctors(doctor_pb2.ListDoctorsRequest(), metadata=api.md)).doctors
    }
    phones: dict[str, str] = {}
    for b in found:
        if b.patient.id not in phones:
            phones[b.patient.id] = b.patient.phone or await _phone(api, b.patient.id)
    writer = csv.writer(out or sys.stdout)
    writer.writerow(CSV_COLUMNS)
    for b in sorted(found, key=lambda b: (b.appointment_date, b.doctor_id, b.start_time, b.token)):
        writer.writerow(csv_row(b, doctors.get(b.doctor_id, b.doctor_id), phones.get(b.patient.id, "")))


def csv_row(b: c.Booking, doctor: str, phone: str) -> list[str]:
    attendance = ""
    field = b.DESCRIPTOR.fields_by_name.get("attendance")
    if field is not None and field.enum_type is not None:
        attendance = field.enum_type.values_by_number[b.attendance].name.removeprefix("ATTENDANCE_")
    return [
        b.reference,
        b.appointment_date,
        b.start_time,
        str(b.token) if b.token else "",
        doctor,
        b.patient.name,
        phone,
        "; ".join(s.name for s in b.services),
        status(b.status),
        attendance or "UNKNOWN",
        _major(b.final_price.amount_minor),
        _major(b.payment.paid.amount_minor - b.payment.refunded.amount_minor),
    ]


def _major(amount_minor: int) -> str:
    whole, paise = divmod(amount_minor, 100)
    return f"{whole}.{paise:02d}"


async def _phone(api: Api, patient_id: str) -> str:
    try:
        reply = await api.patients.GetPatient(
            patient_pb2.GetPatientRequest(patient_id=patient_id), metadata=api.md, timeout=10
        )
    except grpc.aio.AioRpcError as err:
        if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            return ""  # an inline patient, not in the registry
        raise
    return reply.patient.phone
