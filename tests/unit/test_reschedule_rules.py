"""booking_svc's reschedule, actor and note rules, as pure functions (issue 19)."""

from __future__ import annotations

import pytest

from booking_svc import domain
from clinic.v1 import booking_pb2, saga_pb2
from clinic.v1 import common_pb2 as c
from clinic_common import subjects
from clinic_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from schedule_svc.domain import patient_busy
from tests.unit.test_booking_rules import CATALOG, IST, NOW, decided, held, req

DESK = c.Actor(sub="desk-1", role="staff")
ASHA = c.Actor(sub="p1", role="patient")


def confirmed() -> saga_pb2.BookingRecord:
    t = domain.apply_discount(held(), decided(c.DISCOUNT_OUTCOME_NOT_ELIGIBLE), NOW)
    assert t is not None and t.record.booking.status == c.BOOKING_STATUS_CONFIRMED
    return t.record


def move(**kw) -> booking_pb2.RescheduleBookingRequest:
    return booking_pb2.RescheduleBookingRequest(booking_id="b1", **kw)


def asked(record=None, actor=DESK, **kw) -> domain.Transition:
    t = domain.reschedule(record or confirmed(), move(**kw), None, NOW, IST, actor)
    assert t is not None
    return t


def answer(number: int = 1, ok: bool = True, reason: int = 0) -> saga_pb2.PlacesMoved:
    return saga_pb2.PlacesMoved(booking_id="b1", number=number, moved=ok, reason=reason, token=4, message="m")


def test_a_reschedule_asks_for_the_move_and_keeps_the_booking_where_it_is():
    t = asked(appointment_date="2026-11-27", request_id="r1")
    b = t.record.booking
    assert (b.appointment_date, b.status, b.token) == ("2026-11-25", c.BOOKING_STATUS_CONFIRMED, 3)
    assert [m.subject for m in t.outbox] == [subjects.saga_subject(subjects.PLACES_MOVE, "b1")]
    sent = saga_pb2.PlacesMove.FromString(t.outbox[0].payload)
    assert (sent.number, sent.current.holder, sent.target.holder) == (1, "", "b1~1")
    assert (sent.current.appointment_date, sent.target.appointment_date) == ("2026-11-25", "2026-11-27")
    assert sent.target.patient_id == "p1" and not sent.target.waitlist
    assert t.outbox[0].msg_id == "b1:places.move.1"
    assert t.record.actor == DESK and t.record.move.number == 1


def test_the_answer_moves_the_booking_or_keeps_everything_it_had():
    t = asked(appointment_date="2026-11-27")
    done = domain.moved(t.record, answer(), NOW)
    b = done.record.booking
    assert (b.appointment_date, b.token, done.record.holder, done.reindex) == ("2026-11-27", 4, "b1~1", True)
    assert b.history[-1].type == c.EVENT_TYPE_BOOKING_RESCHEDULED and "→" in b.history[-1].message
    assert b.history[-1].actor == DESK and b.discount == t.record.booking.discount
    assert not done.record.move.number and domain.moved(done.record, answer(), NOW) is None  # once
    refused = domain.moved(t.record, answer(ok=False, reason=c.REJECTION_REASON_PATIENT_BUSY), NOW)
    kept = refused.record.booking
    assert (kept.appointment_date, refused.record.holder) == ("2026-11-25", "")
    assert kept.history[-1].type == c.EVENT_TYPE_RESCHEDULE_REFUSED
    assert kept.history[-1].reason == c.REJECTION_REASON_PATIENT_BUSY
    assert "REJECTION_REASON_PATIENT_BUSY" in kept.history[-1].message
    assert not refused.outbox[1:] and refused.outbox[0].subject.startswith("booking.events.")


def test_a_cancel_after_a_move_releases_the_places_it_holds_now():
    done = domain.moved(asked(appointment_date="2026-11-27").record, answer(), NOW)
    t = domain.cancel(done.record, "", NOW, ASHA)
    release = [m for m in t.outbox if m.subject.startswith(subjects.PLACES_RELEASE + ".")]
    assert len(release) == 1
    places = saga_pb2.PlacesReleaseRequested.FromString(release[0].payload).places
    assert (places.holder, places.appointment_date) == ("b1~1", "2026-11-27")
    assert t.record.booking.history[-1].actor == ASHA


def test_a_booking_ending_during_a_move_releases_both_sets_and_ignores_the_late_answer():
    t = domain.cancel(asked(appointment_date="2026-11-27").record, "", NOW, DESK)
    released = [
        saga_pb2.PlacesReleaseRequested.FromString(m.payload).places.holder
        for m in t.outbox
        if m.subject.startswith(subjects.PLACES_RELEASE + ".")
    ]
    assert sorted(released) == ["", "b1~1"]  # the current places, and whatever the move holds
    assert domain.moved(t.record, answer(), NOW) is None


def test_preconditions_and_bad_input():
    with pytest.raises(InvalidArgument) as nothing:
        asked()
    assert [f for f, _ in nothing.value.violations] == ["appointment_date"]
    with pytest.raises(InvalidArgument) as bad:
        asked(appointment_date="2026-11-01", start_time="9am", duration_minutes=3, doctor_id="d-x")
    assert {f for f, _ in bad.value.violations} == {
        "appointment_date",
        "start_time",
        "duration_minutes",
        "doctor_id",
    }
    pending = domain.create(req(), CATALOG, "b1", NOW, IST).record
    with pytest.raises(FailedPrecondition):
        asked(pending, appointment_date="2026-11-27")
    busy = asked(appointment_date="2026-11-27").record
    with pytest.raises(FailedPrecondition):
        asked(busy, appointment_date="2026-11-28")


def test_the_same_request_id_moves_once_and_another_request_under_it_is_refused():
    first = asked(appointment_date="2026-11-27", request_id="r1")
    again = domain.reschedule(
        first.record, move(appointment_date="2026-11-27", request_id="r1"), None, NOW, IST
    )
    assert again is None
    with pytest.raises(AlreadyExists):
        domain.reschedule(first.record, move(appointment_date="2026-11-28", request_id="r1"), None, NOW, IST)


def test_a_waitlisted_booking_moved_into_free_places_goes_on_to_the_discount():
    waiting = domain.places_decided(
        domain.create(req(), CATALOG, "b1", NOW, IST).record,
        saga_pb2.PlacesDecided(booking_id="b1", waitlisted=True, waitlist_position=1),
        NOW,
    ).record
    done = domain.moved(asked(waiting, appointment_date="2026-11-27").record, answer(), NOW)
    assert done.record.booking.status == c.BOOKING_STATUS_PENDING and done.enters_pending
    assert [e.type for e in done.record.booking.history][-2:] == [
        c.EVENT_TYPE_BOOKING_RESCHEDULED,
        c.EVENT_TYPE_PLACES_RESERVED,
    ]
    assert done.outbox[-1].subject == subjects.saga_subject(subjects.DISCOUNT_REQUESTED, "b1")
    assert domain.offer(done.record, saga_pb2.PlacesOffered(booking_id="b1"), NOW) is None  # old hold's offer


def test_events_carry_the_caller_or_the_system_that_caused_them():
    t = domain.create(req(), CATALOG, "b1", NOW, IST, actor=ASHA)
    assert t.record.booking.history[0].actor == ASHA
    confirmed_ = domain.apply_discount(t.record, decided(c.DISCOUNT_OUTCOME_NOT_ELIGIBLE), NOW)
    assert {e.actor.sub for e in confirmed_.record.booking.history} == {"p1"}  # caused by her call
    timed_out = domain.time_out(t.record, NOW)
    assert timed_out.record.booking.history[-1].actor == c.Actor(sub="booking_svc", role="system")
    no_show = domain.mark_no_show(confirmed_.record, NOW)  # the sweep's step, after the day
    assert no_show.record.booking.history[-1].actor == c.Actor(sub="booking_svc", role="system")
    assert no_show.record.actor == ASHA  # a system step does not take over the saga


def test_the_note_is_validated_and_changing_it_records_who_not_what():
    assert domain.create(req(note="knee"), CATALOG, "b1", NOW, IST).record.booking.note == "knee"
    with pytest.raises(InvalidArgument) as long:
        domain.create(req(note="x" * 501), CATALOG, "b1", NOW, IST)
    assert [f for f, _ in long.value.violations] == ["note"]
    t = domain.update_note(confirmed(), "fever", NOW, DESK)
    assert t.record.booking.note == "fever" and "fever" not in t.record.booking.history[-1].message
    assert t.record.booking.history[-1].actor == DESK
    assert domain.update_note(t.record, "fever", NOW, DESK) is None
    with pytest.raises(InvalidArgument):
        domain.update_note(t.record, "y" * 501, NOW, DESK)


def test_patient_busy_counts_other_bookings_overlaps_only():
    held = {"b1": (600, 630), "b2~3": (700, 715)}
    assert patient_busy("b9", (615, 645), held)  # overlaps b1
    assert not patient_busy("b9", (630, 700), held)  # touching is not overlapping
    assert not patient_busy("b1~2", (610, 640), held)  # b1's own move may overlap its old time
    assert patient_busy("b1~2", (705, 720), held)  # but not b2's (held under its move's holder)
