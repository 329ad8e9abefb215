"""Booking rules and state transitions: pure functions over protos, no I/O.

Every transition returns the booking's next record plus the messages it must publish (the
outbox). The store commits both atomically, so an event is never lost between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from clinic.v1 import booking_pb2, common_pb2, doctor_pb2, saga_pb2
from clinic_common import subjects
from clinic_common.catalog import Catalog
from clinic_common.clock import parse_date
from clinic_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from clinic_common.money import format_minor, money
from clinic_common.timeutil import parse_hhmm, to_timestamp
from clinic_common.validate import MAX_ID_LEN, PATIENT_ID, check_email, check_phone, full, normalise_email

S = common_pb2
PENDING, CONFIRMED, REJECTED, CANCELLED, WAITLISTED = (
    S.BOOKING_STATUS_PENDING,
    S.BOOKING_STATUS_CONFIRMED,
    S.BOOKING_STATUS_REJECTED,
    S.BOOKING_STATUS_CANCELLED,
    S.BOOKING_STATUS_WAITLISTED,
)
FINAL_STATUSES = frozenset({CONFIRMED, REJECTED, CANCELLED})

MAX_NAME_LEN = 200
MAX_REQUEST_ID_LEN = 128
MAX_SERVICES = 20
MAX_REASON_LEN = 500
MAX_NOTE_LEN = 500
MAX_DAYS_AHEAD = 366

QUOTA_EXHAUSTED_MESSAGE = "Daily discount quota reached"
OFFER_EXPIRED_MESSAGE = "The waitlist offer expired before it was accepted"
# The events notification_svc tells the patient about carry the appointment as it stood, so the
# notifier words them and schedules reminders without asking booking_svc (it reads BOOKING_EVENTS
# itself: no notification step in the saga). Kinds other helpers add join by name once they exist.
TELLS = frozenset(
    {
        S.EVENT_TYPE_BOOKING_CONFIRMED,
        S.EVENT_TYPE_BOOKING_REJECTED,
        S.EVENT_TYPE_BOOKING_CANCELLED,
        S.EVENT_TYPE_WAITLIST_OFFERED,
        *(
            S.EventType.Value(name)
            for name in ("EVENT_TYPE_BOOKING_RESCHEDULED", "EVENT_TYPE_DOCTOR_UNAVAILABLE")
            if name in S.EventType.keys()
        ),
    }
)


MIN_DURATION, MAX_DURATION = 15, 480


@dataclass
class Transition:
    """What to commit: the next record and the messages to publish with it."""

    record: saga_pb2.BookingRecord
    outbox: list[saga_pb2.OutboxMessage] = field(default_factory=list)
    leaves_pending: bool = False
    enters_pending: bool = False  # back under the booking timeout (an accepted waitlist offer)
    # Whose call this step answers, when it is not the one the saga follows (record.actor): the
    # notifier, or schedule_svc offering a place another booking freed.
    actor: common_pb2.Actor | None = None
    reindex: bool = False  # a reschedule moved the booking: list it under its new date and doctor


def system_actor(service: str) -> common_pb2.Actor:
    """The actor of what no caller did: timeouts, expiries, reminders."""
    return common_pb2.Actor(sub=service, role="system")


# ---------------------------------------------------------------------------------------------
# Validation


def validate_create(
    req: booking_pb2.CreateBookingRequest,
    catalog: Catalog,
    today: date,
    doctor: doctor_pb2.Doctor | None = None,
    now_minute: int = 0,
    country_code: str = "91",
) -> list[tuple[str, str]]:
    """Every bad field of the request, named as the proto path; empty when the request is good.

    `doctor` is the doctor `req.doctor_id` names (None: unknown, or none named); `now_minute` the
    clinic's time of day, so a time earlier today is refused; `country_code` completes a 10-digit
    inline phone.
    """
    bad: list[tuple[str, str]] = []
    if not req.HasField("patient"):
        bad.append(("patient", "a patient is required"))
    else:
        p = req.patient
        if not p.id:
            bad.append(("patient.id", "must not be empty"))
        elif len(p.id) > MAX_ID_LEN or not full(PATIENT_ID, p.id):
            bad.append(("patient.id", f"up to {MAX_ID_LEN} letters, digits or ._@:- characters"))
        if len(p.name) > MAX_NAME_LEN:
            bad.append(("patient.name", f"at most {MAX_NAME_LEN} characters"))
        if p.gender not in (S.GENDER_FEMALE, S.GENDER_MALE, S.GENDER_OTHER):
            bad.append(("patient.gender", "must be GENDER_FEMALE, GENDER_MALE or GENDER_OTHER"))
        try:
            if parse_date(p.date_of_birth) > today:
                bad.append(("patient.date_of_birth", "must not be in the future"))
        except ValueError as exc:
            bad.append(("patient.date_of_birth", str(exc)))
        bad += check_phone(p.phone, country_code, "patient.phone")[0]
        bad += check_email(p.email, "patient.email")
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
            elif doctor is not None and service_id not in doctor.service_ids:
                bad.append((f"service_ids[{i}]", f"not performed by doctor {doctor.code}"))
            seen.add(service_id)
    appointment = today
    if req.appointment_date:
        try:
            appointment = parse_date(req.appointment_date)
            if appointment < today:
                bad.append(("appointment_date", "must not be before today"))
            elif appointment > today + timedelta(days=MAX_DAYS_AHEAD):
                bad.append(("appointment_date", f"at most {MAX_DAYS_AHEAD} days ahead"))
        except ValueError as exc:
            bad.append(("appointment_date", str(exc)))
    if len(req.request_id) > MAX_REQUEST_ID_LEN:
        bad.append(("request_id", f"at most {MAX_REQUEST_ID_LEN} characters"))
    if len(req.note) > MAX_NOTE_LEN:
        bad.append(("note", f"at most {MAX_NOTE_LEN} characters"))
    bad += _validate_doctor_fields(req, doctor, appointment == today, now_minute)
    return bad


def _validate_doctor_fields(
    req: booking_pb2.CreateBookingRequest, doctor: doctor_pb2.Doctor | None, today: bool, now_minute: int
) -> list[tuple[str, str]]:
    bad: list[tuple[str, str]] = []
    if req.doctor_id and doctor is None:
        bad.append(("doctor_id", "unknown doctor" if len(req.doctor_id) <= MAX_ID_LEN else "not a doctor id"))
    if req.start_time:
        if not req.doctor_id:
            bad.append(("start_time", "a time needs a doctor_id"))
        try:
            start = parse_hhmm(req.start_time)
        except ValueError:
            bad.append(("start_time", "must be a time as HH:MM"))
        else:
            if today and start < now_minute:
                bad.append(("start_time", "is already past today"))
    if req.duration_minutes and not MIN_DURATION <= req.duration_minutes <= MAX_DURATION:
        bad.append(("duration_minutes", f"between {MIN_DURATION} and {MAX_DURATION} minutes"))
    elif req.duration_minutes and not req.start_time:
        bad.append(("duration_minutes", "a duration needs a start_time"))
    return bad


MAX_PAGE_SIZE = 100
MAX_LIST_DAYS = 92  # a date range of ListBookings: a quarter at most


def validate_list(req: booking_pb2.ListBookingsRequest) -> list[tuple[str, str]]:
    bad: list[tuple[str, str]] = []
    if len(req.patient_id) > MAX_ID_LEN:
        bad.append(("patient_id", f"at most {MAX_ID_LEN} characters"))
    if len(req.doctor_id) > MAX_ID_LEN:
        bad.append(("doctor_id", f"at most {MAX_ID_LEN} characters"))
    if req.date:
        try:
            parse_date(req.date)
        except ValueError as exc:
            bad.append(("date", str(exc)))
    for name in ("date_from", "date_to"):
        if getattr(req, name):
            try:
                parse_date(getattr(req, name))
            except ValueError as exc:
                bad.append((name, str(exc)))
    if req.date_from and req.date_to and not any(n == "date_from" or n == "date_to" for n, _ in bad):
        span = (parse_date(req.date_to) - parse_date(req.date_from)).days
        if span < 0:
            bad.append(("date_to", "must not be before date_from"))
        elif span > MAX_LIST_DAYS:
            bad.append(("date_to", f"at most {MAX_LIST_DAYS} days after date_from"))
    if len(req.reference) > MAX_ID_LEN:
        bad.append(("reference", f"at most {MAX_ID_LEN} characters"))
    if req.status not in common_pb2.BookingStatus.values():
        bad.append(("status", "not a BookingStatus"))
    if req.page_size < 0 or req.page_size > MAX_PAGE_SIZE:
        bad.append(("page_size", f"between 0 and {MAX_PAGE_SIZE}"))
    if len(req.page_token) > 256:
        bad.append(("page_token", "not a token from a previous page"))
    return bad


def matches(b: common_pb2.Booking, req: booking_pb2.ListBookingsRequest) -> bool:
    return (
        (not req.patient_id or b.patient.id == req.patient_id)
        and (not req.date or b.appointment_date == req.date)
        and (not req.doctor_id or b.doctor_id == req.doctor_id)
        and (not req.status or b.status == req.status)
        and (not req.date_from or b.appointment_date >= req.date_from)
        and (not req.date_to or b.appointment_date <= req.date_to)
        and (not req.reference or b.reference == req.reference.upper().replace("-", ""))
    )


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
    doctor: doctor_pb2.Doctor | None = None,
    patient: common_pb2.Patient | None = None,
    reference: str = "",
    actor: common_pb2.Actor | None = None,
    country_code: str = "91",
) -> Transition:
    """A new PENDING booking asking for its places. `patient`: the registry's record when the
    request names a registered patient by id alone; `doctor`: the doctor it names; `reference`:
    its short code (booking_svc.payments). An inline patient's phone is stored as E.164 and its
    e-mail in lower case, as the registry stores them."""
    local = now.astimezone(tz)
    today = local.date()
    if patient is not None:
        named = booking_pb2.CreateBookingRequest()
        named.CopyFrom(req)
        named.patient.CopyFrom(patient)
    bad = validate_create(
        named if patient is not None else req,
        catalog,
        today,
        doctor,
        local.hour * 60 + local.minute,
        country_code,
    )
    if bad:
        raise InvalidArgument(bad)
    if patient is None:
        patient = common_pb2.Patient()
        patient.CopyFrom(req.patient)
        patient.phone = check_phone(patient.phone, country_code)[1]
        patient.email = normalise_email(patient.email)
    appointment = req.appointment_date or today.isoformat()
    services = [catalog.services[sid] for sid in req.service_ids]
    base = sum(s.price_minor for s in services)
    ts = to_timestamp(now)
    booking = common_pb2.Booking(
        id=booking_id,
        patient=patient,
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
        status_message="Booking received; reserving places",
        created_at=ts,
        updated_at=ts,
        doctor_id=req.doctor_id,
        start_time=req.start_time,
        duration_minutes=(req.duration_minutes or doctor.slot_minutes) if req.start_time and doctor else 0,
        reference=reference,
        note=req.note,
    )
    record = saga_pb2.BookingRecord(
        booking=booking,
        version=1,
        request_fingerprint=fingerprint(req, appointment),
        clinic_date=today.isoformat(),
        traceparent=traceparent,
        actor=actor,
    )
    t = Transition(record=record)
    _event(t, S.EVENT_TYPE_BOOKING_CREATED, f"Booking created: {format_minor(base)}", now)
    request = places_request(record, req.waitlist)
    # Held places go on from schedule_svc straight to discount_svc, whose answer brings both back:
    # from here on a discount may be asked for this booking without booking_svc asking.
    request.discount.CopyFrom(discount_request(record))
    record.discount_requested = True
    _send(t, subjects.PLACES_REQUESTED, "places.requested", request)
    return t


def places_request(record: saga_pb2.BookingRecord, waitlist: bool = False) -> saga_pb2.PlacesRequested:
    b = record.booking
    return saga_pb2.PlacesRequested(
        booking_id=b.id,
        appointment_date=b.appointment_date,
        service_ids=[s.service_id for s in b.services],
        doctor_id=b.doctor_id,
        start_time=b.start_time,
        duration_minutes=b.duration_minutes,
        waitlist=waitlist,
        holder=record.holder,
        patient_id=b.patient.id,
    )


def discount_request(record: saga_pb2.BookingRecord) -> saga_pb2.DiscountRequested:
    b = record.booking
    return saga_pb2.DiscountRequested(
        booking_id=b.id,
        patient_id=b.patient.id,
        gender=b.patient.gender,
        date_of_birth=b.patient.date_of_birth,
        base_price=b.base_price,
        clinic_date=record.clinic_date,
    )


def places_decided(
    record: saga_pb2.BookingRecord, decided: saga_pb2.PlacesDecided, now: datetime
) -> Transition | None:
    """The places step answered booking_svc: wait in line, or reject (nothing held). After an
    accepted offer it answers again when the offer ran out. (Held places normally travel on to
    discount_svc and come back with its decision; a reservation answered here, from a request
    without a discount part, asks for the discount itself: the old path, kept until the condition
    in docs/architecture.md, "When the old path can go", holds.)"""
    b = record.booking
    if b.status != PENDING or _has_event(b, S.EVENT_TYPE_PLACES_RESERVED):
        return None  # already answered, or the booking ended first (its release closed the places)
    if decided.waitlisted and record.offer_accepted:
        return None  # a late copy of the first answer: the booking has moved on since
    t = _next(record, now)
    nb = t.record.booking
    if decided.waitlisted:
        nb.status = WAITLISTED
        nb.waitlist_position = decided.waitlist_position
        nb.status_message = decided.message or f"Waiting in line at position {decided.waitlist_position}"
        _event(t, S.EVENT_TYPE_WAITLISTED, nb.status_message, now)
        t.leaves_pending = True  # holds nothing and waits as long as it takes: no booking timeout
        t.record.discount_requested = False  # nothing went on to discount_svc
        return t
    if not decided.reserved:
        t.record.discount_requested = False  # refused places never reach discount_svc
        _reject(
            t, decided.reason or S.REJECTION_REASON_CAPACITY_UNAVAILABLE, decided.message, now, held=False
        )
        return t
    _hold_places(t, decided, now)
    nb.status_message = "Places reserved; checking discounts"
    t.record.discount_requested = True
    _send(t, subjects.DISCOUNT_REQUESTED, "discount.requested", discount_request(t.record))
    return t


def _hold_places(t: Transition, decided: saga_pb2.PlacesDecided, now: datetime) -> None:
    t.record.booking.token = decided.token
    _event(t, S.EVENT_TYPE_PLACES_RESERVED, decided.message or "Places reserved", now)


def apply_discount(
    record: saga_pb2.BookingRecord, decided: saga_pb2.DiscountDecided, now: datetime
) -> Transition | None:
    """The discount decision arrived (places are held by then, and when they came with it they are
    recorded first, in the same step): confirm, or reject and give them back."""
    b = record.booking
    if b.status != PENDING or b.discount.outcome != S.DISCOUNT_OUTCOME_UNSPECIFIED:
        return None  # already decided, or no longer waiting: a redelivery or a late answer
    t = _next(record, now)
    nb = t.record.booking
    if decided.HasField("places") and not _has_event(b, S.EVENT_TYPE_PLACES_RESERVED):
        _hold_places(t, decided.places, now)
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
    nb.status = CONFIRMED
    nb.status_message = f"Booking confirmed: {format_minor(nb.final_price.amount_minor)}"
    _event(t, S.EVENT_TYPE_BOOKING_CONFIRMED, nb.status_message, now)
    t.leaves_pending = True
    return t


def offer(
    record: saga_pb2.BookingRecord, offered: saga_pb2.PlacesOffered, now: datetime
) -> Transition | None:
    """A freed place is held for this waitlisted booking until `offered.offer_expires_at`.

    It may arrive before the answer that put the booking in line (they travel separately)."""
    b = record.booking
    if b.HasField("offer_expires_at") or record.offer_accepted or record.holder:
        return None  # a redelivery, or an offer to the hold a reschedule moved it away from
    if b.status != WAITLISTED and (b.status != PENDING or _has_event(b, S.EVENT_TYPE_PLACES_RESERVED)):
        return None  # ended (its release gives the place on) or never waited
    t = _next(record, now)
    nb = t.record.booking
    t.leaves_pending = nb.status == PENDING
    t.actor = SCHEDULE_SYSTEM  # a place another booking freed
    nb.status = WAITLISTED
    nb.offer_expires_at.CopyFrom(offered.offer_expires_at)
    nb.status_message = offered.message or "A place is offered: accept it before the offer expires"
    _event(t, S.EVENT_TYPE_WAITLIST_OFFERED, nb.status_message, now)
    return t


def accept_offer(
    record: saga_pb2.BookingRecord, now: datetime, actor: common_pb2.Actor | None = None
) -> tuple[Transition, bool]:
    """The patient takes the offered place: (transition, True) and the saga goes on (schedule_svc
    turns the offer into held places, then the discount decision); after the offer's time,
    (REJECTED OFFER_EXPIRED, False), its places given back and on to the next in line."""
    b = record.booking
    if b.status != WAITLISTED or not b.HasField("offer_expires_at"):
        status = common_pb2.BookingStatus.Name(b.status)
        raise FailedPrecondition(f"booking is {status} with no waitlist offer to accept")
    if record.move.number:
        raise FailedPrecondition("a reschedule of this booking is in progress")
    t = _next(record, now)
    _caused_by(t, actor)
    if now >= b.offer_expires_at.ToDatetime(tzinfo=UTC):
        _reject(t, S.REJECTION_REASON_OFFER_EXPIRED, OFFER_EXPIRED_MESSAGE, now)
        return t, False
    nb = t.record.booking
    nb.status = PENDING
    nb.status_message = "Offer accepted; reserving the offered places"
    t.record.offer_accepted = True
    t.record.discount_requested = True  # the held places go on to discount_svc (see create)
    _event(t, S.EVENT_TYPE_OFFER_ACCEPTED, nb.status_message, now)
    accept = saga_pb2.PlacesAccept(
        booking_id=nb.id, appointment_date=nb.appointment_date, discount=discount_request(t.record)
    )
    _send(t, subjects.PLACES_ACCEPT, "places.accept", accept)
    t.enters_pending = True
    return t, True


class OfferNotRecordedYet(Exception):
    """An offer's expiry came before the offer itself (they travel separately, and the offer's
    delivery may have been retried): the expiry is tried again later, once the offer is recorded,
    so the history never shows OFFER_EXPIRED without the WAITLIST_OFFERED it ends."""


def offer_expired(record: saga_pb2.BookingRecord, now: datetime) -> Transition | None:
    """schedule_svc ended the offer (its places already went on to the next in line)."""
    b = record.booking
    if b.status not in (WAITLISTED, PENDING) or _has_event(b, S.EVENT_TYPE_PLACES_RESERVED):
        return None  # ended already, or accepted in time (then this cannot come: the hold is held)
    if not b.HasField("offer_expires_at") and not record.offer_accepted:
        raise OfferNotRecordedYet(f"booking {b.id}: the offer this expiry ends is not recorded yet")
    t = _next(record, now)
    _caused_by(t, SCHEDULE_SYSTEM)
    _reject(t, S.REJECTION_REASON_OFFER_EXPIRED, OFFER_EXPIRED_MESSAGE, now, held=False)
    return t


def doctor_unavailable(
    record: saga_pb2.BookingRecord, absent: saga_pb2.DoctorUnavailable, now: datetime
) -> Transition | None:
    """schedule_svc marked the booking's day absent: the booking keeps its places (staff move or
    cancel it) and its history says so, once per date, however often the message comes."""
    b = record.booking
    if b.status in (REJECTED, CANCELLED) or b.doctor_id != absent.doctor_id:
        return None
    if b.appointment_date != absent.date:
        return None  # moved to another day since
    if any(e.type == S.EVENT_TYPE_DOCTOR_UNAVAILABLE and e.about_date == absent.date for e in b.history):
        return None  # a redelivery
    t = _next(record, now)
    t.actor = absent.actor if absent.HasField("actor") else SCHEDULE_SYSTEM  # the desk that marked it
    event = _event(t, S.EVENT_TYPE_DOCTOR_UNAVAILABLE, f"The doctor is not available on {absent.date}", now)
    event.about_date = absent.date
    _refresh_payload(t, event)
    return t


def cancel(
    record: saga_pb2.BookingRecord, reason: str, now: datetime, actor: common_pb2.Actor | None = None
) -> Transition:
    b = record.booking
    if b.status in (REJECTED, CANCELLED):
        raise FailedPrecondition(f"booking is already {common_pb2.BookingStatus.Name(b.status)}")
    if len(reason) > MAX_REASON_LEN:
        raise InvalidArgument([("reason", f"at most {MAX_REASON_LEN} characters")])
    t = _next(record, now)
    _caused_by(t, actor)
    nb = t.record.booking
    nb.status = CANCELLED
    nb.status_message = "Booking cancelled" + (f": {reason}" if reason else "")
    _event(t, S.EVENT_TYPE_BOOKING_CANCELLED, nb.status_message, now)
    t.leaves_pending = True
    _compensate(t, "cancelled")
    return t


def time_out(record: saga_pb2.BookingRecord, now: datetime) -> Transition | None:
    if record.booking.status != PENDING:
        return None
    t = _next(record, now)
    _caused_by(t, BOOKING_SYSTEM)
    _reject(t, S.REJECTION_REASON_TIMED_OUT, "Booking timed out before the saga finished", now)
    return t


def no_show_due(b: common_pb2.Booking, day_end: str, after: timedelta, tz: ZoneInfo, now: datetime) -> bool:
    """A CONFIRMED booking whose day ended `after` ago (its doctor's day_end; midnight without one)."""
    if b.status != CONFIRMED or b.attendance != S.ATTENDANCE_UNKNOWN or not b.appointment_date:
        return False
    day = date.fromisoformat(b.appointment_date)
    minutes = parse_hhmm(day_end) if day_end else 24 * 60
    end = datetime.combine(day, datetime.min.time(), tz) + timedelta(minutes=minutes)
    return now >= end + after


NOT_CONFIRMED = "not confirmed"


def appointment_start(b: common_pb2.Booking, day_start: str, tz: ZoneInfo) -> datetime:
    """When the visit begins: its time, or the doctor's day start for a token without one."""
    minutes = parse_hhmm(b.start_time or day_start or "09:00")
    return datetime.combine(date.fromisoformat(b.appointment_date), datetime.min.time(), tz) + timedelta(
        minutes=minutes
    )


def release_due(
    b: common_pb2.Booking, start: datetime, confirm_by: timedelta, asked_before: timedelta, now: datetime
) -> bool:
    """CLINIC_CONFIRM_BY: a CONFIRMED booking its patient was asked to confirm (booked before the
    first reminder) and did not, once the deadline `confirm_by` before its start has passed."""
    if b.status != CONFIRMED or b.HasField("attendance_confirmed_at") or not b.appointment_date:
        return False
    deadline, asked = start - confirm_by, start - asked_before
    booked = b.created_at.ToDatetime(tzinfo=UTC)
    return asked < deadline and booked <= asked and deadline <= now < start


def confirm_attendance(
    record: saga_pb2.BookingRecord, now: datetime, actor: common_pb2.Actor | None = None
) -> Transition | None:
    b = record.booking
    if b.status != CONFIRMED:
        raise FailedPrecondition(
            f"only a CONFIRMED booking can be confirmed, not {common_pb2.BookingStatus.Name(b.status)}"
        )
    if b.HasField("attendance_confirmed_at"):
        return None  # confirmed already: a repeat changes nothing
    t = _next(record, now)
    _caused_by(t, actor)
    t.record.booking.attendance_confirmed_at.CopyFrom(to_timestamp(now))
    _event(t, S.EVENT_TYPE_ATTENDANCE_CONFIRMED, "The patient confirmed they will come", now)
    return t


def release_unconfirmed(record: saga_pb2.BookingRecord, now: datetime) -> Transition | None:
    """Cancel a booking not confirmed in time; its places go back (and to the waitlist) as any cancel's."""
    b = record.booking
    if b.status != CONFIRMED or b.HasField("attendance_confirmed_at"):
        return None
    return cancel(record, NOT_CONFIRMED, now, BOOKING_SYSTEM)


def mark_no_show(record: saga_pb2.BookingRecord, now: datetime) -> Transition | None:
    """The patient never came: NO_SHOW once (the booking stays CONFIRMED; its places are history)."""
    b = record.booking
    if b.status != CONFIRMED or b.attendance != S.ATTENDANCE_UNKNOWN:
        return None
    t = _next(record, now)
    t.actor = BOOKING_SYSTEM
    t.record.booking.attendance = S.ATTENDANCE_NO_SHOW
    _event(t, S.EVENT_TYPE_NO_SHOW, "Not checked in by the end of the day: no-show", now)
    counted = saga_pb2.PatientNoShow(booking_id=b.id, patient_id=b.patient.id)
    _send(t, subjects.PATIENT_NO_SHOW, "patient.noshow", counted)
    return t


def places_released(
    record: saga_pb2.BookingRecord, released: saga_pb2.PlacesReleased, now: datetime
) -> Transition | None:
    if not released.freed or record.places_released:
        return None  # it held nothing, or this is a redelivery
    t = _next(record, now)
    t.record.places_released = True
    t.record.booking.token = 0
    _event(t, S.EVENT_TYPE_PLACES_RELEASED, "Places released", now)
    return t


def quota_released(record: saga_pb2.BookingRecord, now: datetime) -> Transition | None:
    if record.booking.discount.outcome != S.DISCOUNT_OUTCOME_APPLIED:
        return None  # never held one, or already recorded
    t = _next(record, now)
    t.record.booking.discount.outcome = S.DISCOUNT_OUTCOME_RELEASED
    _event(t, S.EVENT_TYPE_QUOTA_RELEASED, "Discount quota unit released", now)
    return t


# ---------------------------------------------------------------------------------------------
# Helpers


def _next(record: saga_pb2.BookingRecord, now: datetime) -> Transition:
    nxt = saga_pb2.BookingRecord()
    nxt.CopyFrom(record)
    nxt.version = record.version + 1
    nxt.booking.updated_at.CopyFrom(to_timestamp(now))
    return Transition(record=nxt)


def _has_event(b: common_pb2.Booking, kind: int) -> bool:
    return any(e.type == kind for e in b.history)


def _reject(t: Transition, reason: int, message: str, now: datetime, *, held: bool = True) -> None:
    """End the booking REJECTED; `held=False` when its places were refused (nothing to give back)."""
    nb = t.record.booking
    nb.status = REJECTED
    nb.rejection_reason = reason
    nb.status_message = message
    _event(t, S.EVENT_TYPE_BOOKING_REJECTED, message, now)
    t.leaves_pending = True
    if not held:
        t.record.places_release_requested = True  # nothing held: no release to ask for
    _compensate(t, common_pb2.RejectionReason.Name(reason))


def _compensate(t: Transition, reason: str) -> None:
    _request_places_release(t, reason)
    _request_release(t, reason)
    _release_move(t, reason)


def _request_places_release(t: Transition, reason: str) -> None:
    """Ask schedule_svc to give back the places this booking holds, or may still be given.

    A booking whose places are not decided yet asks too: schedule_svc then refuses them later.
    """
    if t.record.places_release_requested:
        return
    t.record.places_release_requested = True
    release = saga_pb2.PlacesReleaseRequested(
        booking_id=t.record.booking.id, places=places_request(t.record), reason=reason
    )
    _send(t, subjects.PLACES_RELEASE, "places.release", release)


def _request_release(t: Transition, reason: str) -> None:
    """Ask discount_svc to give back a unit this booking holds, or may still be granted.

    A booking whose discount was asked for but not decided asks too: discount_svc then refuses any
    later grant for it. One that never got to the discount step never touches the quota.
    """
    outcome = t.record.booking.discount.outcome
    if (
        not t.record.discount_requested
        or t.record.release_requested
        or outcome not in (S.DISCOUNT_OUTCOME_APPLIED, S.DISCOUNT_OUTCOME_UNSPECIFIED)
    ):
        return
    t.record.release_requested = True
    release = saga_pb2.QuotaReleaseRequested(
        booking_id=t.record.booking.id, quota_date=t.record.clinic_date, reason=reason
    )
    _send(t, subjects.QUOTA_RELEASE, "quota.release", release)


def _event(t: Transition, kind: int, message: str, now: datetime, reason: int = 0) -> common_pb2.BookingEvent:
    b = t.record.booking
    event = b.history.add(
        booking_id=b.id,
        sequence=len(b.history) + 1,
        type=kind,
        status=b.status,
        message=message,
        occurred_at=to_timestamp(now),
        patient_id=b.patient.id,
        reason=reason,
    )
    actor = t.actor if t.actor is not None else (t.record.actor if t.record.HasField("actor") else None)
    if actor is not None:
        event.actor.CopyFrom(actor)
    if kind in TELLS:
        event.appointment.CopyFrom(appointment_of(b))
    t.outbox.append(
        saga_pb2.OutboxMessage(
            subject=subjects.event_subject(b.id),
            msg_id=f"{b.id}:{event.sequence}",
            payload=event.SerializeToString(),
            headers=_trace(t.record),
        )
    )
    return event


def appointment_of(b: common_pb2.Booking) -> common_pb2.Appointment:
    return common_pb2.Appointment(
        date=b.appointment_date,
        start_time=b.start_time,
        doctor_id=b.doctor_id,
        token=b.token,
        duration_minutes=b.duration_minutes,
        reference=getattr(b, "reference", ""),
    )


def _refresh_payload(t: Transition, event: common_pb2.BookingEvent) -> None:
    """After a field was set on an event _event already queued: queue its final form."""
    ids = {f"{event.booking_id}:{event.sequence}", f"{event.booking_id}:notify:{event.sequence}"}
    for message in t.outbox:
        if message.msg_id in ids:
            message.payload = event.SerializeToString()


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


# ---------------------------------------------------------------------------------------------
# Who did it, the note, and rescheduling

BOOKING_SYSTEM = system_actor("booking_svc")
SCHEDULE_SYSTEM = system_actor("schedule_svc")
MOVABLE = frozenset({CONFIRMED, WAITLISTED})


def _caused_by(t: Transition, actor: common_pb2.Actor | None) -> None:
    """From this step on, the saga follows `actor`'s call: its events (and the ones its messages
    cause later, a PLACES_RELEASED after a cancellation, say) carry it."""
    if actor is not None:
        t.record.actor.CopyFrom(actor)


def update_note(
    record: saga_pb2.BookingRecord, note: str, now: datetime, actor: common_pb2.Actor | None = None
) -> Transition | None:
    """The reason for the visit, changed; the event says that it changed, never what it says."""
    if len(note) > MAX_NOTE_LEN:
        raise InvalidArgument([("note", f"at most {MAX_NOTE_LEN} characters")])
    if record.booking.note == note:
        return None
    t = _next(record, now)
    t.record.booking.note = note
    t.actor = actor
    _event(t, S.EVENT_TYPE_NOTE_CHANGED, "Note changed" if note else "Note cleared", now)
    return t


def validate_reschedule(
    req: booking_pb2.RescheduleBookingRequest,
    b: common_pb2.Booking,
    doctor: doctor_pb2.Doctor | None,
    today: date,
    now_minute: int,
) -> list[tuple[str, str]]:
    """Every bad field of a reschedule; `doctor` is the doctor it ends with (None: unknown or none)."""
    bad: list[tuple[str, str]] = []
    if not (req.appointment_date or req.doctor_id or req.start_time or req.duration_minutes):
        bad.append(
            ("appointment_date", "give a new appointment_date, doctor_id, start_time or duration_minutes")
        )
    day: date | None = None  # None: not known (malformed), so no "already past today" either
    try:
        day = parse_date(req.appointment_date or b.appointment_date)
        if req.appointment_date and day < today:
            bad.append(("appointment_date", "must not be before today"))
        elif req.appointment_date and day > today + timedelta(days=MAX_DAYS_AHEAD):
            bad.append(("appointment_date", f"at most {MAX_DAYS_AHEAD} days ahead"))
    except ValueError as exc:
        bad.append(("appointment_date", str(exc)))
    doctor_id = req.doctor_id or b.doctor_id
    if req.doctor_id and doctor is None:
        bad.append(("doctor_id", "unknown doctor" if len(req.doctor_id) <= MAX_ID_LEN else "not a doctor id"))
    elif req.doctor_id and doctor is not None:
        for s in b.services:
            if s.service_id not in doctor.service_ids:
                bad.append(("doctor_id", f"doctor {doctor.code} does not perform {s.service_id}"))
                break
    start_time = req.start_time or b.start_time
    if req.start_time:
        if not doctor_id:
            bad.append(("start_time", "a time needs a doctor_id"))
        try:
            parse_hhmm(req.start_time)
        except ValueError:
            bad.append(("start_time", "must be a time as HH:MM"))
    if start_time and day == today and not any(f == "start_time" for f, _ in bad):
        try:
            if parse_hhmm(start_time) < now_minute:
                bad.append(("start_time", "is already past today"))
        except ValueError:
            pass
    if req.duration_minutes and not MIN_DURATION <= req.duration_minutes <= MAX_DURATION:
        bad.append(("duration_minutes", f"between {MIN_DURATION} and {MAX_DURATION} minutes"))
    elif req.duration_minutes and not start_time:
        bad.append(("duration_minutes", "a duration needs a start_time"))
    if len(req.request_id) > MAX_REQUEST_ID_LEN:
        bad.append(("request_id", f"at most {MAX_REQUEST_ID_LEN} characters"))
    return bad


def reschedule_fingerprint(req: booking_pb2.RescheduleBookingRequest) -> str:
    return req.SerializeToString(deterministic=True).hex()


def reschedule(
    record: saga_pb2.BookingRecord,
    req: booking_pb2.RescheduleBookingRequest,
    doctor: doctor_pb2.Doctor | None,
    now: datetime,
    tz: ZoneInfo,
    actor: common_pb2.Actor | None = None,
    leaving: str = "",
) -> Transition | None:
    """Ask schedule_svc to move the booking: hold the new places, then release the old ones
    (saga.places.move). The booking keeps its places until the answer (`moved`). None: this
    request_id already moved it (or is moving it). `leaving`: the token of the mark this move took
    in the booking's check-in queue (booking_svc/leaving.py), kept on the move until the answer."""
    b = record.booking
    local = now.astimezone(tz)
    bad = validate_reschedule(req, b, doctor, local.date(), local.hour * 60 + local.minute)
    if bad:
        raise InvalidArgument(bad)
    if req.request_id and req.request_id in record.move_requests:
        if record.move_requests[req.request_id] != reschedule_fingerprint(req):
            raise AlreadyExists(f"request_id {req.request_id!r} was used for another reschedule")
        return None
    if b.status not in MOVABLE:
        raise FailedPrecondition(
            "only a CONFIRMED or WAITLISTED booking can be moved; "
            f"it is {common_pb2.BookingStatus.Name(b.status)}"
        )
    if b.appointment_date < local.date().isoformat():
        raise FailedPrecondition("the booking's date has passed")
    if record.move.number:
        raise FailedPrecondition("a reschedule of this booking is already in progress")
    number = record.moves + 1
    target = places_request(record)
    target.appointment_date = req.appointment_date or b.appointment_date
    target.doctor_id = req.doctor_id or b.doctor_id
    target.start_time = req.start_time or b.start_time
    target.duration_minutes = (
        req.duration_minutes
        or b.duration_minutes
        or (doctor.slot_minutes if doctor and target.start_time else 0)
    )
    target.holder = f"{b.id}~{number}"
    target.waitlist = False
    current = places_request(record)
    if _where(current) == _where(target):
        raise InvalidArgument([("appointment_date", "the booking is already at that date, doctor and time")])
    t = _next(record, now)
    _caused_by(t, actor)
    summary = f"{_where(current)} → {_where(target)}"
    t.record.moves = number
    t.record.move.CopyFrom(saga_pb2.Move(number=number, target=target, summary=summary, leaving=leaving))
    if req.request_id:
        t.record.move_requests[req.request_id] = reschedule_fingerprint(req)
    t.record.booking.status_message = f"Reschedule requested: {summary}"
    move = saga_pb2.PlacesMove(booking_id=b.id, number=number, current=current, target=target)
    _send(t, subjects.PLACES_MOVE, f"places.move.{number}", move)
    return t


def moved(record: saga_pb2.BookingRecord, answer: saga_pb2.PlacesMoved, now: datetime) -> Transition | None:
    """schedule_svc's answer to a reschedule: the booking shows its new date, doctor, time and token
    (its old places are already released), or it keeps everything it had."""
    b = record.booking
    if record.move.number != answer.number or b.status not in MOVABLE:
        return None  # a redelivery, or the booking ended meanwhile (its end released the move's places)
    t = _next(record, now)
    move = saga_pb2.Move()
    move.CopyFrom(record.move)
    t.record.ClearField("move")
    nb = t.record.booking
    if not answer.moved:
        name = common_pb2.RejectionReason.Name(answer.reason)
        nb.status_message = f"Reschedule refused ({name}): {answer.message}; the booking keeps its places"
        _event(t, S.EVENT_TYPE_RESCHEDULE_REFUSED, nb.status_message, now, reason=answer.reason)
        return t
    target = move.target
    nb.appointment_date = target.appointment_date
    nb.doctor_id = target.doctor_id
    nb.start_time = target.start_time
    nb.duration_minutes = target.duration_minutes
    nb.token = answer.token
    t.record.holder = target.holder
    t.reindex = True
    nb.status_message = f"Rescheduled: {move.summary}"
    _event(t, S.EVENT_TYPE_BOOKING_RESCHEDULED, f"Rescheduled: {move.summary}", now)
    if nb.status == WAITLISTED:
        # It waited in line and now holds places: on to the discount decision, as after an offer.
        nb.status = PENDING
        nb.waitlist_position = 0
        nb.ClearField("offer_expires_at")
        nb.status_message = "Rescheduled into free places; checking discounts"
        _event(t, S.EVENT_TYPE_PLACES_RESERVED, answer.message or "Places reserved", now)
        t.record.discount_requested = True
        t.enters_pending = True
        _send(
            t,
            subjects.DISCOUNT_REQUESTED,
            f"discount.requested.move{move.number}",
            discount_request(t.record),
        )
    return t


def _where(p: saga_pb2.PlacesRequested) -> str:
    parts = [p.appointment_date]
    if p.start_time:
        parts.append(f"{p.start_time} ({p.duration_minutes} min)")
    if p.doctor_id:
        parts.append(f"doctor {p.doctor_id}")
    return " ".join(parts)


def _release_move(t: Transition, reason: str) -> None:
    """A booking that ends while a reschedule is under way gives back what the move may hold (or
    may still be given: schedule_svc then refuses the move), beside its current places."""
    move = t.record.move
    if not move.number or t.record.move_release_requested:
        return
    t.record.move_release_requested = True
    release = saga_pb2.PlacesReleaseRequested(
        booking_id=t.record.booking.id, places=move.target, reason=reason
    )
    _send(t, subjects.PLACES_RELEASE, f"places.release.move{move.number}", release)
