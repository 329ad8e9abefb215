"""Booking rules and state transitions: pure functions over protos, no I/O.

Every transition returns the booking's next record plus the messages it must publish (the
outbox). The store commits both atomically, so an event is never lost between the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from clinic.v1 import booking_pb2, common_pb2, saga_pb2
from clinic_common import subjects
from clinic_common.clock import clinic_day, parse_date
from clinic_common.errors import FailedPrecondition, InvalidArgument
from clinic_common.money import format_minor, money
from clinic_common.timeutil import to_timestamp

from .catalog import Catalog

S = common_pb2
PENDING, CONFIRMED, REJECTED, CANCELLED = (
    S.BOOKING_STATUS_PENDING,
    S.BOOKING_STATUS_CONFIRMED,
    S.BOOKING_STATUS_REJECTED,
    S.BOOKING_STATUS_CANCELLED,
)
FINAL_STATUSES = frozenset({CONFIRMED, REJECTED, CANCELLED})

MAX_ID_LEN = 64
MAX_NAME_LEN = 200
MAX_REQUEST_ID_LEN = 128
MAX_SERVICES = 20
MAX_REASON_LEN = 500
MAX_DAYS_AHEAD = 366
PATIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$")

QUOTA_EXHAUSTED_MESSAGE = "Daily discount quota reached"
NOTIFY_ON = frozenset(
    {S.EVENT_TYPE_BOOKING_CONFIRMED, S.EVENT_TYPE_BOOKING_REJECTED, S.EVENT_TYPE_BOOKING_CANCELLED}
)


@dataclass
class Transition:
    """What to commit: the next record, the messages to publish, the capacity change."""

    record: saga_pb2.BookingRecord
    outbox: list[saga_pb2.OutboxMessage] = field(default_factory=list)
    leaves_pending: bool = False
    capacity_op: str = "none"  # "reserve" (all or nothing, else `alternative`), "release", "none"
    capacity: list[tuple[str, int]] = field(default_factory=list)  # (service_id, daily_capacity)
    alternative: Transition | None = None  # taken instead when a reservation does not fit


# ---------------------------------------------------------------------------------------------
# Validation


def validate_create(
    req: booking_pb2.CreateBookingRequest, catalog: Catalog, today: date
) -> list[tuple[str, str]]:
    """Every bad field of the request, named as the proto path; empty when the request is good."""
    bad: list[tuple[str, str]] = []
    if not req.HasField("patient"):
        bad.append(("patient", "a patient is required"))
    else:
        p = req.patient
        if not p.id:
            bad.append(("patient.id", "must not be empty"))
        elif len(p.id) > MAX_ID_LEN or not PATIENT_ID.match(p.id):
            bad.append(("patient.id", f"up to {MAX_ID_LEN} letters, digits or ._@:- characters"))
        if len(p.name) > MAX_NAME_LEN:
            bad.append(("patient.name", f"at most {MAX_NAME_LEN} characters"))
        if p.gender not in (S.GENDER_FEMALE, S.GENDER_MALE, S.GENDER_OTHER):
            bad.append(("patient.gender", "must be GENDER_FEMALE, GENDER_MALE or GENDER_OTHER"))
        try:
            if parse_date(p.date_of_birth) > today:
                bad.append(("patient.date_of_birth", "must not be in the future"))
        except ValueError:
            bad.append(("patient.date_of_birth", "must be a date as YYYY-MM-DD"))
    if not req.service_ids:
        bad.append(("service_ids", "at least one service is required"))
    elif len(req.service_ids) > MAX_SERVICES:
        bad.append(("service_ids", f"at most {MAX_SERVICES} services"))
    else:
        seen: set[str] = set()
        for i, service_id in enumerate(req.service_ids):
            service = catalog.services.get(service_id)
            if service is None:
                bad.append((f"service_ids[{i}]", "unknown service id"))
            elif service_id in seen:
                bad.append((f"service_ids[{i}]", "listed twice"))
            elif (
                req.HasField("patient") and req.patient.gender and not service.offered_to(req.patient.gender)
            ):
                bad.append((f"service_ids[{i}]", "not offered to the patient's gender"))
            seen.add(service_id)
    if req.appointment_date:
        try:
            appointment = parse_date(req.appointment_date)
            if appointment < today:
                bad.append(("appointment_date", "must not be before today"))
            elif appointment > today + timedelta(days=MAX_DAYS_AHEAD):
                bad.append(("appointment_date", f"at most {MAX_DAYS_AHEAD} days ahead"))
        except ValueError:
            bad.append(("appointment_date", "must be a date as YYYY-MM-DD"))
    if len(req.request_id) > MAX_REQUEST_ID_LEN:
        bad.append(("request_id", f"at most {MAX_REQUEST_ID_LEN} characters"))
    return bad


def fingerprint(req: booking_pb2.CreateBookingRequest, appointment_date: str) -> str:
    """What makes two requests "the same" for idempotency (the defaulted date included)."""
    canonical = booking_pb2.CreateBookingRequest()
    canonical.CopyFrom(req)
    canonical.appointment_date = appointment_date
    return canonical.SerializeToString(deterministic=True).hex()


# ---------------------------------------------------------------------------------------------
# Transitions


def create(
    req: booking_pb2.CreateBookingRequest,
    catalog: Catalog,
    booking_id: str,
    now: datetime,
    tz: ZoneInfo,
    traceparent: str = "",
) -> Transition:
    today = clinic_day(now, tz)
    bad = validate_create(req, catalog, today)
    if bad:
        raise InvalidArgument(bad)
    appointment = req.appointment_date or today.isoformat()
    services = [catalog.services[sid] for sid in req.service_ids]
    base = sum(s.price_minor for s in services)
    ts = to_timestamp(now)
    booking = common_pb2.Booking(
        id=booking_id,
        patient=req.patient,
        services=[
            common_pb2.BookedService(
                service_id=s.id, name=s.name, price=money(s.price_minor, catalog.currency)
            )
            for s in services
        ],
        appointment_date=appointment,
        request_id=req.request_id,
        status=PENDING,
        base_price=money(base, catalog.currency),
        final_price=money(base, catalog.currency),
        status_message="Booking received; checking discounts",
        created_at=ts,
        updated_at=ts,
    )
    record = saga_pb2.BookingRecord(
        booking=booking,
        version=1,
        request_fingerprint=fingerprint(req, appointment),
        clinic_date=today.isoformat(),
        traceparent=traceparent,
    )
    t = Transition(record=record)
    _event(t, S.EVENT_TYPE_BOOKING_CREATED, f"Booking created: {format_minor(base)}", now)
    request = saga_pb2.DiscountRequested(
        booking_id=booking_id,
        patient_id=req.patient.id,
        gender=req.patient.gender,
        date_of_birth=req.patient.date_of_birth,
        base_price=booking.base_price,
        clinic_date=record.clinic_date,
    )
    _send(t, subjects.DISCOUNT_REQUESTED, "discount.requested", request)
    return t


def apply_discount(
    record: saga_pb2.BookingRecord,
    decided: saga_pb2.DiscountDecided,
    capacities: dict[str, int],
    now: datetime,
) -> Transition | None:
    """The discount decision arrived: reject, or reserve capacity and confirm (else reject)."""
    b = record.booking
    if b.status != PENDING or b.discount.outcome != S.DISCOUNT_OUTCOME_UNSPECIFIED:
        return None  # already decided, or no longer waiting: a redelivery or a late answer
    t = _next(record, now)
    nb = t.record.booking
    nb.discount.CopyFrom(decided.discount)
    outcome = decided.discount.outcome
    if outcome == S.DISCOUNT_OUTCOME_APPLIED:
        nb.final_price.amount_minor = nb.base_price.amount_minor - decided.discount.amount.amount_minor
        _event(t, S.EVENT_TYPE_DISCOUNT_APPLIED, decided.message, now)
    elif outcome == S.DISCOUNT_OUTCOME_NOT_ELIGIBLE:
        _event(t, S.EVENT_TYPE_DISCOUNT_NOT_ELIGIBLE, decided.message, now)
    else:
        reason = {
            S.DISCOUNT_OUTCOME_QUOTA_EXHAUSTED: S.REJECTION_REASON_QUOTA_EXHAUSTED,
            S.DISCOUNT_OUTCOME_PATIENT_BLOCKED: S.REJECTION_REASON_PATIENT_BLOCKED,
        }.get(outcome)
        if reason is None:
            raise ValueError(f"unexpected discount outcome {outcome}")
        _event(t, S.EVENT_TYPE_DISCOUNT_REJECTED, decided.message, now)
        _reject(t, reason, decided.message, now)
        return t

    confirmed, full = t, _copy(t)
    nb.status = CONFIRMED
    nb.status_message = f"Booking confirmed: {format_minor(nb.final_price.amount_minor)}"
    _event(confirmed, S.EVENT_TYPE_BOOKING_CONFIRMED, nb.status_message, now)
    confirmed.leaves_pending = True
    confirmed.capacity_op = "reserve"
    confirmed.capacity = [(s.service_id, capacities.get(s.service_id, 0)) for s in nb.services]
    _reject(full, S.REJECTION_REASON_CAPACITY_UNAVAILABLE, "No capacity left on the appointment date", now)
    confirmed.alternative = full
    return confirmed


def cancel(record: saga_pb2.BookingRecord, reason: str, now: datetime) -> Transition:
    b = record.booking
    if b.status in (REJECTED, CANCELLED):
        raise FailedPrecondition(f"booking is already {common_pb2.BookingStatus.Name(b.status)}")
    if len(reason) > MAX_REASON_LEN:
        raise InvalidArgument([("reason", f"at most {MAX_REASON_LEN} characters")])
    t = _next(record, now)
    nb = t.record.booking
    was_confirmed = nb.status == CONFIRMED
    nb.status = CANCELLED
    nb.status_message = "Booking cancelled" + (f": {reason}" if reason else "")
    _event(t, S.EVENT_TYPE_BOOKING_CANCELLED, nb.status_message, now)
    t.leaves_pending = True
    if was_confirmed:
        t.capacity_op = "release"
        t.capacity = [(s.service_id, 0) for s in nb.services]
    _request_release(t, "cancelled")
    return t


def time_out(record: saga_pb2.BookingRecord, now: datetime) -> Transition | None:
    if record.booking.status != PENDING:
        return None
    t = _next(record, now)
    _reject(t, S.REJECTION_REASON_TIMED_OUT, "Booking timed out before the saga finished", now)
    return t


def quota_released(record: saga_pb2.BookingRecord, now: datetime) -> Transition | None:
    if record.booking.discount.outcome != S.DISCOUNT_OUTCOME_APPLIED:
        return None  # never held one, or already recorded
    t = _next(record, now)
    t.record.booking.discount.outcome = S.DISCOUNT_OUTCOME_RELEASED
    _event(t, S.EVENT_TYPE_QUOTA_RELEASED, "Discount quota unit released", now)
    return t


def notification_sent(
    record: saga_pb2.BookingRecord, sent: saga_pb2.NotificationSent, now: datetime
) -> Transition | None:
    if sent.notified_sequence in record.notified_sequences:
        return None
    if not 0 < sent.notified_sequence <= len(record.booking.history):
        raise ValueError(f"notification for unknown event {sent.notified_sequence}")
    notified = record.booking.history[sent.notified_sequence - 1]
    t = _next(record, now)
    t.record.notified_sequences.append(sent.notified_sequence)
    outcome = common_pb2.BookingStatus.Name(notified.status).removeprefix("BOOKING_STATUS_").lower()
    _event(t, S.EVENT_TYPE_NOTIFICATION_SENT, f"Patient notified: booking {outcome}", now)
    return t


# ---------------------------------------------------------------------------------------------
# Helpers


def _next(record: saga_pb2.BookingRecord, now: datetime) -> Transition:
    nxt = saga_pb2.BookingRecord()
    nxt.CopyFrom(record)
    nxt.version = record.version + 1
    nxt.booking.updated_at.CopyFrom(to_timestamp(now))
    return Transition(record=nxt)


def _copy(t: Transition) -> Transition:
    record = saga_pb2.BookingRecord()
    record.CopyFrom(t.record)
    outbox = []
    for m in t.outbox:
        c = saga_pb2.OutboxMessage()
        c.CopyFrom(m)
        outbox.append(c)
    return Transition(record=record, outbox=outbox, leaves_pending=t.leaves_pending)


def _reject(t: Transition, reason: int, message: str, now: datetime) -> None:
    nb = t.record.booking
    nb.status = REJECTED
    nb.rejection_reason = reason
    nb.status_message = message
    _event(t, S.EVENT_TYPE_BOOKING_REJECTED, message, now)
    t.leaves_pending = True
    _request_release(t, common_pb2.RejectionReason.Name(reason))


def _request_release(t: Transition, reason: str) -> None:
    """Ask discount_svc to give back a unit this booking holds, or may still be granted.

    An undecided booking asks too: discount_svc then refuses any later grant for it.
    """
    outcome = t.record.booking.discount.outcome
    if t.record.release_requested or outcome not in (
        S.DISCOUNT_OUTCOME_APPLIED,
        S.DISCOUNT_OUTCOME_UNSPECIFIED,
    ):
        return
    t.record.release_requested = True
    release = saga_pb2.QuotaReleaseRequested(
        booking_id=t.record.booking.id, quota_date=t.record.clinic_date, reason=reason
    )
    _send(t, subjects.QUOTA_RELEASE, "quota.release", release)


def _event(t: Transition, kind: int, message: str, now: datetime) -> common_pb2.BookingEvent:
    b = t.record.booking
    event = b.history.add(
        booking_id=b.id,
        sequence=len(b.history) + 1,
        type=kind,
        status=b.status,
        message=message,
        occurred_at=to_timestamp(now),
        patient_id=b.patient.id,
    )
    payload = event.SerializeToString()
    t.outbox.append(
        saga_pb2.OutboxMessage(
            subject=subjects.event_subject(b.id),
            msg_id=f"{b.id}:{event.sequence}",
            payload=payload,
            headers=_trace(t.record),
        )
    )
    if kind in NOTIFY_ON:  # the notifier hears only outcomes, not every step
        t.outbox.append(
            saga_pb2.OutboxMessage(
                subject=subjects.saga_subject(subjects.NOTIFY, b.id),
                msg_id=f"{b.id}:notify:{event.sequence}",
                payload=payload,
                headers=_trace(t.record),
            )
        )
    return event


def _send(t: Transition, prefix: str, kind: str, payload) -> None:
    booking_id = t.record.booking.id
    t.outbox.append(
        saga_pb2.OutboxMessage(
            subject=subjects.saga_subject(prefix, booking_id),
            msg_id=f"{booking_id}:{kind}",
            payload=payload.SerializeToString(),
            headers=_trace(t.record),
        )
    )


def _trace(record: saga_pb2.BookingRecord) -> dict[str, str]:
    return {"traceparent": record.traceparent} if record.traceparent else {}
