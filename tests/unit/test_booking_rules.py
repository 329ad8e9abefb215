"""booking_svc's domain: validation and the saga's state transitions, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from booking_svc import domain
from booking_svc.catalog import parse
from clinic.v1 import booking_pb2, saga_pb2
from clinic.v1 import common_pb2 as c
from clinic_common.config import ConfigError
from clinic_common.errors import FailedPrecondition, InvalidArgument

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


def test_create_stores_pending_with_the_first_event_and_the_discount_request():
    t = created()
    b = t.record.booking
    assert b.status == c.BOOKING_STATUS_PENDING
    assert b.base_price.amount_minor == 230_000
    assert [(e.sequence, e.type) for e in b.history] == [(1, c.EVENT_TYPE_BOOKING_CREATED)]
    assert [(m.subject, m.msg_id) for m in t.outbox] == [
        ("booking.events.b1", "b1:1"),
        ("saga.discount.requested.b1", "b1:discount.requested"),
    ]
    assert t.record.clinic_date == "2026-11-22"


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


def test_discount_applied_then_capacity_decides_between_confirmed_and_rejected():
    t = domain.apply_discount(created().record, decided(c.DISCOUNT_OUTCOME_APPLIED, 27_600), {"gen": 10}, NOW)
    assert t.capacity_op == "reserve"
    assert t.record.booking.status == c.BOOKING_STATUS_CONFIRMED
    assert t.record.booking.final_price.amount_minor == 230_000 - 27_600
    alt = t.alternative.record.booking
    assert alt.status == c.BOOKING_STATUS_REJECTED
    assert alt.rejection_reason == c.REJECTION_REASON_CAPACITY_UNAVAILABLE
    assert "saga.quota.release.b1" in {m.subject for m in t.alternative.outbox}
    assert domain.apply_discount(t.record, decided(c.DISCOUNT_OUTCOME_APPLIED), {}, NOW) is None  # once


def test_quota_exhausted_rejects_without_a_release():
    t = domain.apply_discount(created().record, decided(c.DISCOUNT_OUTCOME_QUOTA_EXHAUSTED), {}, NOW)
    b = t.record.booking
    assert (b.status, b.rejection_reason) == (c.BOOKING_STATUS_REJECTED, c.REJECTION_REASON_QUOTA_EXHAUSTED)
    assert not any(m.subject.startswith("saga.quota.release") for m in t.outbox)
    assert [e.sequence for e in b.history] == [1, 2, 3]


def test_cancel_releases_places_of_a_confirmed_booking_and_refuses_final_ones():
    confirmed = domain.apply_discount(
        created().record, decided(c.DISCOUNT_OUTCOME_NOT_ELIGIBLE), {}, NOW
    ).record
    t = domain.cancel(confirmed, "ill", NOW)
    assert t.capacity_op == "release" and t.record.booking.status == c.BOOKING_STATUS_CANCELLED
    with pytest.raises(FailedPrecondition):
        domain.cancel(t.record, "", NOW)


def test_timeout_rejects_and_asks_for_a_release_while_the_discount_is_undecided():
    t = domain.time_out(created().record, NOW)
    assert t.record.booking.rejection_reason == c.REJECTION_REASON_TIMED_OUT
    assert "saga.quota.release.b1" in {m.subject for m in t.outbox}
    assert domain.time_out(t.record, NOW) is None


def test_quota_released_and_notifications_are_recorded_once():
    applied = domain.apply_discount(created().record, decided(c.DISCOUNT_OUTCOME_APPLIED, 1), {}, NOW)
    rejected = applied.alternative.record
    released = domain.quota_released(rejected, NOW).record
    assert released.booking.discount.outcome == c.DISCOUNT_OUTCOME_RELEASED
    assert domain.quota_released(released, NOW) is None
    final_seq = next(e.sequence for e in released.booking.history if e.type == c.EVENT_TYPE_BOOKING_REJECTED)
    sent = saga_pb2.NotificationSent(booking_id="b1", notified_sequence=final_seq)
    notified = domain.notification_sent(released, sent, NOW).record
    assert domain.notification_sent(notified, sent, NOW) is None
    assert [e.sequence for e in notified.booking.history] == list(range(1, len(notified.booking.history) + 1))


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
