"""The front desk's rules: pure functions, no grpc, nats or redis.

A queue is one doctor's day (or the clinic's general queue when the booking names no doctor).
Positions are handed out 1, 2, 3 ... in check-in order by the store's check-in script; the rules
here decide who may check in and which state changes are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from clinic.v1 import common_pb2, frontdesk_pb2
from clinic_common.clock import parse_date
from clinic_common.errors import FailedPrecondition, InvalidArgument
from clinic_common.validate import TOKEN_ID, full

S = frontdesk_pb2.VisitState
WAITING = S.VISIT_STATE_WAITING
IN_CONSULTATION = S.VISIT_STATE_IN_CONSULTATION
DONE = S.VISIT_STATE_DONE
NO_SHOW = S.VISIT_STATE_NO_SHOW
K = frontdesk_pb2.QueueChange.Kind

MAX_ID_LEN = 64
ID = TOKEN_ID  # ids become NATS subject tokens and Redis key parts


@dataclass(frozen=True)
class Transition:
    """A compare-and-set: the visit must be in one of `from_states`; it moves to `to`."""

    from_states: tuple[int, ...]
    to: int
    kind: int
    stamp: str  # the visit field that records when


CALL = Transition((WAITING,), IN_CONSULTATION, K.KIND_CALLED, "called_at")
COMPLETE = Transition((IN_CONSULTATION,), DONE, K.KIND_COMPLETED, "done_at")
# A patient called in who never came is a no-show too.
NO_SHOW_MARK = Transition((WAITING, IN_CONSULTATION), NO_SHOW, K.KIND_NO_SHOW, "done_at")


@dataclass(frozen=True)
class QueueId:
    doctor_id: str  # empty: the general queue
    day: str  # YYYY-MM-DD


def require_id(field: str, value: str, *, optional: bool = False) -> None:
    if optional and not value:
        return
    if not value or len(value) > MAX_ID_LEN or not full(ID, value):
        raise InvalidArgument([(field, "must be an id of at most 64 letters, digits, '-' or '_'")])


def queue_id(doctor_id: str, day: str, today: date) -> QueueId:
    """The queue a request names; an empty date is today in the clinic's time zone."""
    require_id("doctor_id", doctor_id, optional=True)
    if not day:
        return QueueId(doctor_id, today.isoformat())
    try:
        parse_date(day)
    except ValueError:
        raise InvalidArgument([("date", "must be YYYY-MM-DD")]) from None
    return QueueId(doctor_id, day)


def check_in_refusal(booking: common_pb2.Booking, today: date) -> str | None:
    """Why this booking cannot check in today, or None. (Who may check in is booking_svc's call.)"""
    if booking.status != common_pb2.BOOKING_STATUS_CONFIRMED:
        status = common_pb2.BookingStatus.Name(booking.status).removeprefix("BOOKING_STATUS_")
        return f"only a CONFIRMED booking can check in (this one is {status})"
    if booking.appointment_date != today.isoformat():
        day = booking.appointment_date
        return f"check-in is on the appointment date ({day}); today is {today.isoformat()}"
    return None


def require_check_in(booking: common_pb2.Booking, today: date) -> None:
    refusal = check_in_refusal(booking, today)
    if refusal:
        raise FailedPrecondition(refusal)


def for_viewer(visit: frontdesk_pb2.Visit, viewer_patient_id: str | None) -> frontdesk_pb2.Visit:
    """What a viewer may see of a visit: staff (None) everything; a patient their own visits whole
    and of the others only the place in the queue (no booking or patient id)."""
    if viewer_patient_id is None or visit.patient_id == viewer_patient_id:
        return visit
    shown = frontdesk_pb2.Visit()
    shown.CopyFrom(visit)
    shown.booking_id = ""
    shown.patient_id = ""
    return shown


def positions_ok(positions: list[int]) -> bool:
    """A queue's positions are exactly 1..n: none given twice, none skipped."""
    return sorted(positions) == list(range(1, len(positions) + 1))
