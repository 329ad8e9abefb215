"""booking_svc's domain: validation and the saga's state transitions, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from booking_svc import domain
from clinic.v1 import booking_pb2, saga_pb2
from clinic.v1 import common_pb2 as c
from clinic_common.catalog import parse
from clinic_common.config import ConfigError
from clinic_common.errors import FailedPrecondition, InvalidArgument
from clinic_common.timeutil import to_timestamp

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
CATALOG = parse(
    {
        "services": [
            {"id": "gen", "name": "General", "price": "500.00", "daily_capacity": 10},
            {
                "id": "mammo",
                "name": "Mammography",
                "price": "1800.00",
                "genders": ["female"],
                "daily_capacity": 1,
            },
        ]
    }
)


def req(**kw) -> booking_pb2.CreateBookingRequest:
    base = {
        "patient": c.Patient(id="p1", name="Asha", gender=c.GENDER_FEMALE, date_of_birth="1990-11-22"),
        "service_ids": ["gen", "mammo"],
        "appointment_date": "2026-11-25",
    }
    base.update(kw)
    return booking_pb2.CreateBookingRequest(**base)


def created() -> domain.Transition:
    return domain.create(req(), CATALOG, "b1", NOW, IST)


def decided(outcome: int, amount: int = 0) -> saga_pb2.DiscountDecided:
    return saga_pb2.DiscountDecided(
        booking_id="b1",
        discount=c.Discount(outcome=outcome, percent=12, amount=c.Money(currency="INR", amount_minor=amount)),
        message="m",
    )


def fields(request) -> set[str]:
    with pytest.raises(InvalidArgument) as caught:
        domain.create(request, CATALOG, "b1", NOW, IST)
    return {f for f, _ in caught.value.violations}


def places(reserved: bool = True, reason: int = 0, token: int = 0) -> saga_pb2.PlacesDecided:
    return saga_pb2.PlacesDecided(booking_id="b1", reserved=reserved, reason=reason, token=token, message="p")


def held() -> saga_pb2.BookingRecord:
    """A booking whose places are reserved and whose discount is being decided."""
    return domain.places_decided(created().record, places(token=3), NOW).record


def subjects_of(t: domain.Transition) -> list[str]:
    return [m.subject for m in t.outbox]


def test_create_stores_pending_with_the_first_event_and_asks_for_places_first():
    t = created()
    b = t.record.booking
    assert b.status == c.BOOKING_STATUS_PENDING
    assert b.base_price.amount_minor == 230_000
    assert [(e.sequence, e.type) for e in b.history] == [(1, c.EVENT_TYPE_BOOKING_CREATED)]
    assert [(m.subject, m.msg_id) for m in t.outbox] == [
        ("booking.events.b1", "b1:1"),
        ("saga.places.requested.b1", "b1:places.requested"),
    ]
    assert t.record.clinic_date == "2026-11-22"
    asked = saga_pb2.PlacesRequested.FromString(t.outbox[1].payload)
    assert (asked.appointment_date, list(asked.service_ids)) == ("2026-11-25", ["gen", "mammo"])
    # The places request carries the discount request: held places go on to discount_svc directly.
    assert (asked.discount.booking_id, asked.discount.base_price.amount_minor) == ("b1", 230_000)
    assert (asked.discount.clinic_date, asked.discount.date_of_birth) == (
        "2026-11-22",
        b.patient.date_of_birth,
    )
    assert t.record.discount_requested


def test_places_and_discount_arriving_together_are_recorded_in_one_step_in_order():
    chained = decided(c.DISCOUNT_OUTCOME_APPLIED, 27_600)
    chained.places.CopyFrom(places(token=4))
    t = domain.apply_discount(created().record, chained, NOW)
    b = t.record.booking
    assert (b.status, b.token, b.final_price.amount_minor) == (
        c.BOOKING_STATUS_CONFIRMED,
        4,
        230_000 - 27_600,
    )
    assert [(e.sequence, e.type) for e in b.history] == [
        (1, c.EVENT_TYPE_BOOKING_CREATED),
        (2, c.EVENT_TYPE_PLACES_RESERVED),
        (3, c.EVENT_TYPE_DISCOUNT_APPLIED),
        (4, c.EVENT_TYPE_BOOKING_CONFIRMED),
    ]
    assert [m.msg_id for m in t.outbox if m.subject.startswith("booking.events")] == ["b1:2", "b1:3", "b1:4"]
    assert t.record.version == 2  # one commit for both answers
    assert domain.apply_discount(t.record, chained, NOW) is None  # a redelivery: nothing
    # An answer to a booking that already recorded its places (the older path) adds them once only.
    old_path = domain.apply_discount(held(), chained, NOW).record.booking
    assert [e.type for e in old_path.history].count(c.EVENT_TYPE_PLACES_RESERVED) == 1


def test_places_reserved_then_the_discount_is_asked_for_once():
    t = domain.places_decided(created().record, places(token=3), NOW)
    b = t.record.booking
    assert b.token == 3 and b.status == c.BOOKING_STATUS_PENDING
    assert [e.type for e in b.history][-1] == c.EVENT_TYPE_PLACES_RESERVED
    assert "saga.discount.requested.b1" in subjects_of(t)
    assert domain.places_decided(t.record, places(token=3), NOW) is None  # a redelivery: nothing


def test_places_refused_rejects_without_touching_quota_or_places():
    t = domain.places_decided(created().record, places(False, c.REJECTION_REASON_SLOT_UNAVAILABLE), NOW)
    b = t.record.booking
    assert not t.record.discount_requested  # refused places never went on to discount_svc
    assert (b.status, b.rejection_reason) == (c.BOOKING_STATUS_REJECTED, c.REJECTION_REASON_SLOT_UNAVAILABLE)
    assert not any(
        s.startswith(("saga.quota", "saga.places.release", "saga.discount")) for s in subjects_of(t)
    )


def test_every_bad_field_is_named():
    assert fields(req(patient=c.Patient(id="", gender=0, date_of_birth="x"), service_ids=[])) == {
        "patient.id",
        "patient.gender",
        "patient.date_of_birth",
        "service_ids",
    }
    male = c.Patient(id="p1", gender=c.GENDER_MALE, date_of_birth="1990-01-01")
    assert fields(req(patient=male, service_ids=["gen", "mammo", "nope", "gen"])) == {
        "service_ids[1]",
        "service_ids[2]",
        "service_ids[3]",
    }
    assert fields(req(appointment_date="2026-11-21")) == {"appointment_date"}
    assert fields(req(request_id="r" * 129)) == {"request_id"}


def test_discount_applied_confirms_and_a_late_decision_changes_nothing():
    t = domain.apply_discount(held(), decided(c.DISCOUNT_OUTCOME_APPLIED, 27_600), NOW)
    assert t.record.booking.status == c.BOOKING_STATUS_CONFIRMED
    assert t.record.booking.final_price.amount_minor == 230_000 - 27_600
    assert not any(s.startswith(("saga.quota", "saga.places.release")) for s in subjects_of(t))
    assert domain.apply_discount(t.record, decided(c.DISCOUNT_OUTCOME_APPLIED), NOW) is None  # once


def test_quota_exhausted_rejects_and_gives_the_places_back_but_no_quota_unit():
    t = domain.apply_discount(held(), decided(c.DISCOUNT_OUTCOME_QUOTA_EXHAUSTED), NOW)
    b = t.record.booking
    assert (b.status, b.rejection_reason) == (c.BOOKING_STATUS_REJECTED, c.REJECTION_REASON_QUOTA_EXHAUSTED)
    assert not any(s.startswith("saga.quota.release") for s in subjects_of(t))
    assert "saga.places.release.b1" in subjects_of(t)
    assert [e.sequence for e in b.history] == [1, 2, 3, 4]


def test_cancel_gives_back_places_and_quota_of_a_confirmed_booking_and_refuses_final_ones():
    confirmed = domain.apply_discount(held(), decided(c.DISCOUNT_OUTCOME_APPLIED, 1), NOW).record
    t = domain.cancel(confirmed, "ill", NOW)
    assert t.record.booking.status == c.BOOKING_STATUS_CANCELLED
    assert {"saga.places.release.b1", "saga.quota.release.b1"} <= set(subjects_of(t))
    with pytest.raises(FailedPrecondition):
        domain.cancel(t.record, "", NOW)


def test_timeout_before_any_answer_closes_the_places_and_the_discount_door():
    """Held places travel on to discount_svc without booking_svc hearing of them: a booking that
    ends before any answer asks for both releases, so a late reservation or grant is refused."""
    t = domain.time_out(created().record, NOW)
    assert t.record.booking.rejection_reason == c.REJECTION_REASON_TIMED_OUT
    assert {"saga.places.release.b1", "saga.quota.release.b1"} <= set(subjects_of(t))
    assert domain.time_out(t.record, NOW) is None


def test_timeout_while_the_discount_is_undecided_asks_for_both_releases():
    t = domain.time_out(held(), NOW)
    assert {"saga.places.release.b1", "saga.quota.release.b1"} <= set(subjects_of(t))


def test_places_released_recorded_once_and_only_when_something_was_freed():
    rejected = domain.apply_discount(held(), decided(c.DISCOUNT_OUTCOME_PATIENT_BLOCKED), NOW).record
    assert (
        domain.places_released(rejected, saga_pb2.PlacesReleased(booking_id="b1", freed=False), NOW) is None
    )
    freed = saga_pb2.PlacesReleased(booking_id="b1", freed=True)
    t = domain.places_released(rejected, freed, NOW)
    assert t.record.booking.history[-1].type == c.EVENT_TYPE_PLACES_RELEASED
    assert t.record.booking.token == 0
    assert domain.places_released(t.record, freed, NOW) is None


def test_quota_released_is_recorded_once():
    applied = domain.apply_discount(held(), decided(c.DISCOUNT_OUTCOME_APPLIED, 1), NOW)
    cancelled = domain.cancel(applied.record, "", NOW).record
    released = domain.quota_released(cancelled, NOW).record
    assert released.booking.discount.outcome == c.DISCOUNT_OUTCOME_RELEASED
    assert domain.quota_released(released, NOW) is None
    assert [e.sequence for e in released.booking.history] == list(range(1, len(released.booking.history) + 1))


def test_told_events_carry_the_appointment_and_no_notification_leaves_the_saga():
    """notification_svc words its messages and sets reminders from the event alone."""
    applied = domain.apply_discount(held(), decided(c.DISCOUNT_OUTCOME_APPLIED, 1), NOW)
    confirmed = applied.record.booking.history[-1]
    assert confirmed.type == c.EVENT_TYPE_BOOKING_CONFIRMED
    b = applied.record.booking
    assert (confirmed.appointment.date, confirmed.appointment.doctor_id) == (b.appointment_date, b.doctor_id)
    assert confirmed.appointment.date
    assert all(not m.subject.startswith("saga.notify") for m in applied.outbox)
    untold = next(e for e in b.history if e.type == c.EVENT_TYPE_DISCOUNT_APPLIED)
    assert not untold.HasField("appointment")  # the other steps stay as small as before


# -- the waitlist ---------------------------------------------------------------------------------

LATER = NOW + timedelta(seconds=60)
EXPIRES = NOW + timedelta(seconds=900)


def waiting_answer(position: int = 2) -> saga_pb2.PlacesDecided:
    return saga_pb2.PlacesDecided(
        booking_id="b1",
        reserved=False,
        waitlisted=True,
        waitlist_position=position,
        reason=c.REJECTION_REASON_CAPACITY_UNAVAILABLE,
        message="No place free: waiting in line at position 2",
    )


def offer_of(expires: datetime = EXPIRES) -> saga_pb2.PlacesOffered:
    return saga_pb2.PlacesOffered(
        booking_id="b1", offer_expires_at=to_timestamp(expires), token=1, message="o"
    )


def waiting() -> saga_pb2.BookingRecord:
    return domain.places_decided(created().record, waiting_answer(), NOW).record


def offered() -> saga_pb2.BookingRecord:
    return domain.offer(waiting(), offer_of(), NOW).record


def test_a_waitlisted_answer_puts_the_booking_in_line_off_the_timeout_holding_nothing():
    t = domain.places_decided(created().record, waiting_answer(), NOW)
    b = t.record.booking
    assert (b.status, b.waitlist_position) == (c.BOOKING_STATUS_WAITLISTED, 2)
    assert [e.type for e in b.history][-1] == c.EVENT_TYPE_WAITLISTED
    assert t.leaves_pending and not t.record.discount_requested
    assert subjects_of(t) == ["booking.events.b1"]  # no quota, no places, no notification
    assert domain.places_decided(t.record, waiting_answer(), NOW) is None  # a redelivery


def test_an_offer_sets_its_expiry_once_and_carries_the_appointment_for_the_notifier():
    t = domain.offer(waiting(), offer_of(), NOW)
    b = t.record.booking
    assert b.status == c.BOOKING_STATUS_WAITLISTED
    assert b.offer_expires_at.ToDatetime(tzinfo=UTC) == EXPIRES
    assert [e.type for e in b.history][-1] == c.EVENT_TYPE_WAITLIST_OFFERED
    assert subjects_of(t) == ["booking.events.b1"]  # the notifier reads the event itself
    assert b.history[-1].HasField("appointment")
    assert domain.offer(t.record, offer_of(), NOW) is None


def test_an_offer_that_overtakes_the_waitlisted_answer_still_counts_and_the_answer_then_changes_nothing():
    t = domain.offer(created().record, offer_of(), NOW)
    assert t.record.booking.status == c.BOOKING_STATUS_WAITLISTED and t.leaves_pending
    assert domain.places_decided(t.record, waiting_answer(), NOW) is None
    assert domain.offer(held(), offer_of(), NOW) is None  # a booking holding places never waited


def test_accept_in_time_goes_on_with_the_saga_under_the_timeout_again():
    t, in_time = domain.accept_offer(offered(), LATER)
    b = t.record.booking
    assert in_time and b.status == c.BOOKING_STATUS_PENDING and t.record.offer_accepted
    assert t.enters_pending and not t.leaves_pending
    assert [e.type for e in b.history][-1] == c.EVENT_TYPE_OFFER_ACCEPTED
    assert subjects_of(t) == ["booking.events.b1", "saga.places.accept.b1"]
    accept = saga_pb2.PlacesAccept.FromString(t.outbox[1].payload)
    assert (accept.booking_id, accept.appointment_date) == ("b1", "2026-11-25")
    assert accept.discount.booking_id == "b1" and t.record.discount_requested  # held places go on
    assert domain.places_decided(t.record, waiting_answer(), LATER) is None  # a late first answer
    reserved = domain.places_decided(t.record, places(token=1), LATER)
    assert reserved.record.booking.token == 1 and "saga.discount.requested.b1" in subjects_of(reserved)
    with pytest.raises(FailedPrecondition):
        domain.accept_offer(t.record, LATER)  # twice


def test_accept_without_an_offer_or_of_a_final_booking_is_a_failed_precondition():
    for record in (waiting(), held(), domain.cancel(offered(), "", NOW).record):
        with pytest.raises(FailedPrecondition):
            domain.accept_offer(record, LATER)


def test_accept_after_the_offer_ran_out_rejects_offer_expired_and_gives_the_place_back():
    t, in_time = domain.accept_offer(offered(), EXPIRES)
    b = t.record.booking
    assert not in_time
    assert (b.status, b.rejection_reason) == (c.BOOKING_STATUS_REJECTED, c.REJECTION_REASON_OFFER_EXPIRED)
    assert "saga.places.release.b1" in subjects_of(t)
    assert not any(s.startswith("saga.quota") for s in subjects_of(t))


def test_an_expired_offer_rejects_without_a_release_and_a_refused_accept_likewise():
    t = domain.offer_expired(offered(), EXPIRES)
    b = t.record.booking
    assert (b.status, b.rejection_reason) == (c.BOOKING_STATUS_REJECTED, c.REJECTION_REASON_OFFER_EXPIRED)
    assert not any(s.startswith(("saga.places.release", "saga.quota")) for s in subjects_of(t))
    assert domain.offer_expired(t.record, EXPIRES) is None
    accepted, _ = domain.accept_offer(offered(), LATER)
    refused = places(False, c.REJECTION_REASON_OFFER_EXPIRED)
    late = domain.places_decided(accepted.record, refused, EXPIRES)
    assert late.record.booking.rejection_reason == c.REJECTION_REASON_OFFER_EXPIRED
    assert "saga.places.release.b1" not in subjects_of(late)
    assert domain.offer_expired(late.record, EXPIRES) is None
    confirmed = domain.places_decided(accepted.record, places(token=1), LATER).record
    assert domain.offer_expired(confirmed, EXPIRES) is None  # held in time: the expiry cannot win


def test_an_expiry_that_overtakes_its_offer_waits_for_it():
    """The offer's delivery was retried and its expiry came first: the expiry is refused for now
    (the consumer tries it again), and once the offer is in, it ends the booking after it."""
    with pytest.raises(domain.OfferNotRecordedYet):
        domain.offer_expired(waiting(), EXPIRES)
    t = domain.offer_expired(offered(), EXPIRES)
    kinds = [e.type for e in t.record.booking.history]
    assert kinds[-1] == c.EVENT_TYPE_BOOKING_REJECTED
    assert kinds.index(c.EVENT_TYPE_WAITLIST_OFFERED) < kinds.index(c.EVENT_TYPE_BOOKING_REJECTED)


def test_cancelling_a_waitlisted_booking_leaves_the_line_and_gives_an_offered_place_back():
    for record in (waiting(), offered()):
        t = domain.cancel(record, "no longer needed", LATER)
        assert t.record.booking.status == c.BOOKING_STATUS_CANCELLED
        assert "saga.places.release.b1" in subjects_of(t)
        assert not any(s.startswith("saga.quota") for s in subjects_of(t))
    assert domain.time_out(waiting(), LATER) is None  # the booking timeout leaves the line alone


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"id": "x", "name": "X", "price": "abc", "daily_capacity": 1}, "service 'x' has a bad 'price'"),
        ({"name": "X", "price": "1.00", "daily_capacity": 1}, "services[0] has no 'id'"),
        ({"id": "x", "name": "X", "price": "1.00", "daily_capacity": -1}, "service 'x' needs"),
        (
            {"id": "x", "name": "X", "price": "1.00", "daily_capacity": 1, "genders": ["alien"]},
            "service 'x' has bad",
        ),
    ],
)
def test_a_bad_catalog_entry_is_named(entry, message):
    with pytest.raises(ConfigError) as caught:
        parse({"services": [entry]})
    assert message in str(caught.value)
