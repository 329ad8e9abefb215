"""Money at the desk and the booking's reference: pure rules over protos, no I/O.

A payment or refund is one transition of the booking record, committed compare-and-set like every
other, so "never more than the final price" and "never more than paid less refunded" hold
whatever runs concurrently: the check and the write are one step on one version. Each entry keeps
its request id, so a retried call finds its entry and records nothing twice.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from clinic.v1 import booking_pb2, common_pb2, saga_pb2
from clinic_common.clock import parse_date
from clinic_common.errors import AlreadyExists, FailedPrecondition
from clinic_common.money import format_minor, money
from clinic_common.timeutil import parse_hhmm, to_timestamp

from .domain import CANCELLED, CONFIRMED, MAX_ID_LEN, MAX_REASON_LEN, MAX_REQUEST_ID_LEN, Transition
from .domain import _event as add_event
from .domain import _next as next_record

S = common_pb2

# -- references ---------------------------------------------------------------------------------

# Read over the phone: digits and capitals without 0/O, 1/I/L (31 symbols; 7 of them give 27.5e9 codes).
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
REFERENCE_LEN = 7
_REFERENCE = re.compile(f"^[{REFERENCE_ALPHABET}]{{{REFERENCE_LEN}}}$")


def new_reference(choice=secrets.choice) -> str:
    return "".join(choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LEN))


def normalise_reference(text: str) -> str:
    """What a person types or reads out ("k7m-q2x p") as the stored form, or "" if it is not one."""
    candidate = re.sub(r"[\s-]", "", text).upper()
    return candidate if _REFERENCE.match(candidate) else ""


# -- payments -----------------------------------------------------------------------------------

METHODS = {
    S.PAYMENT_METHOD_CASH: "cash",
    S.PAYMENT_METHOD_CARD: "card",
    S.PAYMENT_METHOD_UPI: "upi",
    S.PAYMENT_METHOD_INSURANCE: "insurance",
    S.PAYMENT_METHOD_OTHER: "other",
}
MAX_PAYMENT_REFERENCE_LEN = 64
REFUND_POLICIES = ("full", "none")


def _validate_amount(amount: common_pb2.Money, present: bool, currency: str) -> list[tuple[str, str]]:
    if not present:
        return [("amount", "an amount is required")]
    bad = []
    if amount.currency != currency:
        bad.append(("amount.currency", f"must be {currency}"))
    if amount.amount_minor <= 0:
        bad.append(("amount.amount_minor", "must be more than 0 (paise)"))
    return bad


def _validate_common(booking_id: str, request_id: str) -> list[tuple[str, str]]:
    bad = []
    if not booking_id or len(booking_id) > MAX_ID_LEN:
        bad.append(("booking_id", "must be a booking id or reference"))
    if not request_id:
        bad.append(("request_id", "required: the same request_id records once"))
    elif len(request_id) > MAX_REQUEST_ID_LEN:
        bad.append(("request_id", f"at most {MAX_REQUEST_ID_LEN} characters"))
    return bad


def validate_payment(req: booking_pb2.RecordPaymentRequest, currency: str) -> list[tuple[str, str]]:
    bad = _validate_common(req.booking_id, req.request_id)
    bad += _validate_amount(req.amount, req.HasField("amount"), currency)
    if req.method not in METHODS:
        bad.append(("method", "must be one of " + ", ".join(S.PaymentMethod.Name(m) for m in METHODS)))
    if len(req.reference) > MAX_PAYMENT_REFERENCE_LEN:
        bad.append(("reference", f"at most {MAX_PAYMENT_REFERENCE_LEN} characters"))
    return bad


def validate_refund(req: booking_pb2.RefundPaymentRequest, currency: str) -> list[tuple[str, str]]:
    bad = _validate_common(req.booking_id, req.request_id)
    bad += _validate_amount(req.amount, req.HasField("amount"), currency)
    if len(req.reason) > MAX_REASON_LEN:
        bad.append(("reason", f"at most {MAX_REASON_LEN} characters"))
    return bad


def totals(b: common_pb2.Booking) -> tuple[int, int]:
    """(paid, refunded) in paise, from the ledger."""
    paid = sum(e.amount.amount_minor for e in b.payment.entries if e.kind == S.PAYMENT_ENTRY_KIND_PAYMENT)
    refunded = sum(e.amount.amount_minor for e in b.payment.entries if e.kind == S.PAYMENT_ENTRY_KIND_REFUND)
    return paid, refunded


def payment_status(b: common_pb2.Booking) -> int:
    paid, refunded = totals(b)
    if paid == 0:
        return S.PAYMENT_STATUS_UNPAID
    if b.payment.refund_due.amount_minor > 0:
        return S.PAYMENT_STATUS_REFUND_DUE
    if paid - refunded == 0:
        return S.PAYMENT_STATUS_REFUNDED
    if paid - refunded >= b.final_price.amount_minor:
        return S.PAYMENT_STATUS_PAID
    return S.PAYMENT_STATUS_PARTIALLY_PAID


def _refresh(b: common_pb2.Booking) -> None:
    paid, refunded = totals(b)
    currency = b.final_price.currency
    b.payment.paid.CopyFrom(money(paid, currency))
    b.payment.refunded.CopyFrom(money(refunded, currency))
    if not b.payment.HasField("refund_due"):
        b.payment.refund_due.CopyFrom(money(0, currency))
    b.payment.status = payment_status(b)


def _already(b: common_pb2.Booking, request_id: str, entry: common_pb2.PaymentEntry) -> bool:
    """True when this request id was recorded with the same content; ALREADY_EXISTS when not."""
    for e in b.payment.entries:
        if e.request_id != request_id:
            continue
        same = (
            e.kind == entry.kind
            and e.amount == entry.amount
            and e.method == entry.method
            and e.reference == entry.reference
            and e.reason == entry.reason
        )
        if not same:
            raise AlreadyExists(f"request_id {request_id!r} was used for another payment or refund")
        return True
    return False


def record_payment(
    record: saga_pb2.BookingRecord,
    req: booking_pb2.RecordPaymentRequest,
    now: datetime,
    actor: common_pb2.Actor | None = None,
) -> Transition | None:
    """Take `req.amount` for a CONFIRMED booking; None when this request id was recorded already."""
    b = record.booking
    entry = common_pb2.PaymentEntry(
        kind=S.PAYMENT_ENTRY_KIND_PAYMENT,
        amount=req.amount,
        method=req.method,
        reference=req.reference,
        request_id=req.request_id,
    )
    if _already(b, req.request_id, entry):
        return None
    if b.status != CONFIRMED:
        raise FailedPrecondition(
            f"payments are taken for CONFIRMED bookings; this one is {S.BookingStatus.Name(b.status)}"
        )
    paid, refunded = totals(b)
    owed = b.final_price.amount_minor - (paid - refunded)
    if req.amount.amount_minor > owed:
        raise FailedPrecondition(
            f"{format_minor(req.amount.amount_minor)} is more than the"
            f" {format_minor(max(owed, 0))} still owed"
            f" (final price {format_minor(b.final_price.amount_minor)})"
        )
    t = next_record(record, now)
    t.actor = actor  # the caller's step: the saga goes on following whom it followed
    nb = t.record.booking
    entry.at.CopyFrom(to_timestamp(now))
    entry.event_sequence = len(nb.history) + 1
    nb.payment.entries.append(entry)
    nb.payment.method = req.method
    nb.payment.reference = req.reference
    nb.payment.paid_at.CopyFrom(to_timestamp(now))
    _refresh(nb)
    left = owed - req.amount.amount_minor
    add_event(
        t,
        S.EVENT_TYPE_PAYMENT_RECORDED,
        f"Paid {format_minor(req.amount.amount_minor)} by {METHODS[req.method]}"
        + (f"; {format_minor(left)} still owed" if left else "; paid in full"),
        now,
    )
    return t


def refund_payment(
    record: saga_pb2.BookingRecord,
    req: booking_pb2.RefundPaymentRequest,
    now: datetime,
    actor: common_pb2.Actor | None = None,
) -> Transition | None:
    """Give back `req.amount` (at most paid less refunded); None when this request id was recorded."""
    b = record.booking
    entry = common_pb2.PaymentEntry(
        kind=S.PAYMENT_ENTRY_KIND_REFUND, amount=req.amount, reason=req.reason, request_id=req.request_id
    )
    if _already(b, req.request_id, entry):
        return None
    paid, refunded = totals(b)
    if req.amount.amount_minor > paid - refunded:
        raise FailedPrecondition(
            f"{format_minor(req.amount.amount_minor)} is more than the {format_minor(paid - refunded)}"
            " paid and not yet refunded"
        )
    t = next_record(record, now)
    t.actor = actor  # the caller's step: the saga goes on following whom it followed
    nb = t.record.booking
    entry.at.CopyFrom(to_timestamp(now))
    entry.event_sequence = len(nb.history) + 1
    nb.payment.entries.append(entry)
    due = max(nb.payment.refund_due.amount_minor - req.amount.amount_minor, 0)
    nb.payment.refund_due.CopyFrom(money(due, nb.final_price.currency))
    _refresh(nb)
    add_event(
        t,
        S.EVENT_TYPE_PAYMENT_REFUNDED,
        f"Refunded {format_minor(req.amount.amount_minor)}" + (f": {req.reason}" if req.reason else ""),
        now,
    )
    return t


# -- cancellation policy ------------------------------------------------------------------------


def starts_at(b: common_pb2.Booking, tz: ZoneInfo, day_start: str = "") -> datetime:
    """When the visit starts: its start_time, else the doctor's day_start, else the day's midnight."""
    minute = 0
    for hhmm in (b.start_time, day_start):
        if hhmm:
            minute = parse_hhmm(hhmm)
            break
    day = parse_date(b.appointment_date)
    local = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(minutes=minute)
    return local.astimezone(UTC)


def is_late(
    b: common_pb2.Booking, now: datetime, tz: ZoneInfo, notice_hours: int, day_start: str = ""
) -> bool:
    """Cancelled later than `notice_hours` before the start (0: never late)."""
    if notice_hours <= 0:
        return False
    return now > starts_at(b, tz, day_start) - timedelta(hours=notice_hours)


def refund_due_on_cancel(t: Transition, *, late: bool, policy: str) -> None:
    """A cancelled booking that was paid owes the money back by the policy (`full`: unless late)."""
    nb = t.record.booking
    t.record.late_cancellation = late
    paid, refunded = totals(nb)
    if nb.status != CANCELLED or paid == 0:
        return
    due = paid - refunded if policy == "full" and not late else 0
    nb.payment.refund_due.CopyFrom(money(due, nb.final_price.currency))
    _refresh(nb)
