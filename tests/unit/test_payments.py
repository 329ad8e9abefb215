"""booking_svc's money rules: payments, refunds, the cancellation policy and references (pure)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_svc import domain, payments, reports
from clinic.v1 import booking_pb2, saga_pb2
from clinic.v1 import common_pb2 as c
from clinic_common.errors import AlreadyExists, FailedPrecondition

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def confirmed(final: int = 50_000, status: int = c.BOOKING_STATUS_CONFIRMED, **kw) -> saga_pb2.BookingRecord:
    booking = c.Booking(
        id="b1",
        status=status,
        appointment_date="2026-11-25",
        final_price=c.Money(currency="INR", amount_minor=final),
        base_price=c.Money(currency="INR", amount_minor=final),
        **kw,
    )
    return saga_pb2.BookingRecord(booking=booking, version=3)


def pay(amount: int, request_id: str = "r1", method: int = c.PAYMENT_METHOD_CASH, **kw):
    return booking_pb2.RecordPaymentRequest(
        booking_id="b1",
        amount=c.Money(currency="INR", amount_minor=amount),
        method=method,
        request_id=request_id,
        **kw,
    )


def refund(amount: int, request_id: str = "x1", reason: str = "") -> booking_pb2.RefundPaymentRequest:
    return booking_pb2.RefundPaymentRequest(
        booking_id="b1",
        amount=c.Money(currency="INR", amount_minor=amount),
        reason=reason,
        request_id=request_id,
    )


def apply(record, t):
    assert t is not None
    return t.record


# -- references -------------------------------------------------------------------------------


def test_references_avoid_look_alike_characters_and_read_back_as_typed():
    for _ in range(200):
        ref = payments.new_reference()
        assert len(ref) >= 6
        assert not set(ref) & set("0O1IL")
        assert payments.normalise_reference(ref.lower()[:3] + "-" + ref.lower()[3:]) == ref
    assert payments.normalise_reference("0123456") == ""  # 0 and 1 are never in a reference
    assert payments.normalise_reference("a" * 32) == ""  # a booking id is not a reference


def test_the_create_transition_carries_the_reference():
    from tests.unit.test_booking_rules import CATALOG, req

    t = domain.create(req(), CATALOG, "b1", NOW, IST, reference="K7MQ2XP")
    assert t.record.booking.reference == "K7MQ2XP"


# -- payments ---------------------------------------------------------------------------------


def test_partial_payments_then_paid_in_full():
    r = apply(None, payments.record_payment(confirmed(), pay(20_000, "a"), NOW))
    b = r.booking
    assert b.payment.status == c.PAYMENT_STATUS_PARTIALLY_PAID
    assert b.payment.paid.amount_minor == 20_000
    assert b.history[-1].type == c.EVENT_TYPE_PAYMENT_RECORDED
    assert r.version == 4
    r = apply(
        None, payments.record_payment(r, pay(30_000, "b", c.PAYMENT_METHOD_UPI, reference="UPI-1"), NOW)
    )
    assert r.booking.payment.status == c.PAYMENT_STATUS_PAID
    assert r.booking.payment.method == c.PAYMENT_METHOD_UPI
    assert r.booking.payment.reference == "UPI-1"
    assert [e.event_sequence for e in r.booking.payment.entries] == [1, 2]
    assert [e.sequence for e in r.booking.history] == [1, 2]


def test_never_more_than_the_final_price():
    r = apply(None, payments.record_payment(confirmed(), pay(40_000, "a"), NOW))
    with pytest.raises(FailedPrecondition, match="still owed"):
        payments.record_payment(r, pay(10_001, "b"), NOW)
    with pytest.raises(FailedPrecondition):
        payments.record_payment(confirmed(), pay(50_001), NOW)


@pytest.mark.parametrize(
    "status",
    [
        c.BOOKING_STATUS_PENDING,
        c.BOOKING_STATUS_CANCELLED,
        c.BOOKING_STATUS_REJECTED,
        c.BOOKING_STATUS_WAITLISTED,
    ],
)
def test_payments_only_for_confirmed_bookings(status):
    with pytest.raises(FailedPrecondition, match="CONFIRMED"):
        payments.record_payment(confirmed(status=status), pay(100), NOW)


def test_the_same_request_id_records_once_and_a_different_request_under_it_is_refused():
    r = apply(None, payments.record_payment(confirmed(), pay(100, "same"), NOW))
    assert payments.record_payment(r, pay(100, "same"), NOW) is None
    with pytest.raises(AlreadyExists):
        payments.record_payment(r, pay(200, "same"), NOW)
    with pytest.raises(AlreadyExists):
        payments.refund_payment(r, refund(100, "same"), NOW)


def test_validation_names_each_bad_field():
    bad = booking_pb2.RecordPaymentRequest(
        booking_id="",
        amount=c.Money(currency="USD", amount_minor=0),
        method=c.PAYMENT_METHOD_UNSPECIFIED,
        reference="r" * 65,
    )
    fields = {f for f, _ in payments.validate_payment(bad, "INR")}
    assert fields == {
        "booking_id",
        "amount.currency",
        "amount.amount_minor",
        "method",
        "reference",
        "request_id",
    }
    negative = pay(-5)
    assert {f for f, _ in payments.validate_payment(negative, "INR")} == {"amount.amount_minor"}
    unknown = pay(5)
    unknown.method = 99
    assert {f for f, _ in payments.validate_payment(unknown, "INR")} == {"method"}
    assert {
        f
        for f, _ in payments.validate_payment(
            booking_pb2.RecordPaymentRequest(booking_id="b", method=1, request_id="r"), "INR"
        )
    } == {"amount"}
    assert payments.validate_payment(pay(5, reference="r" * 64), "INR") == []
    assert {f for f, _ in payments.validate_refund(refund(0, reason="x" * 501), "INR")} == {
        "amount.amount_minor",
        "reason",
    }


# -- refunds ----------------------------------------------------------------------------------


def test_refunds_never_exceed_paid_less_refunded():
    r = apply(None, payments.record_payment(confirmed(), pay(30_000, "a"), NOW))
    r = apply(None, payments.refund_payment(r, refund(10_000, "x"), NOW))
    assert r.booking.payment.refunded.amount_minor == 10_000
    assert r.booking.payment.status == c.PAYMENT_STATUS_PARTIALLY_PAID
    assert r.booking.history[-1].type == c.EVENT_TYPE_PAYMENT_REFUNDED
    with pytest.raises(FailedPrecondition, match="not yet refunded"):
        payments.refund_payment(r, refund(20_001, "y"), NOW)
    r = apply(None, payments.refund_payment(r, refund(20_000, "y"), NOW))
    assert r.booking.payment.status == c.PAYMENT_STATUS_REFUNDED
    assert payments.refund_payment(r, refund(20_000, "y"), NOW) is None
    with pytest.raises(FailedPrecondition):
        payments.refund_payment(confirmed(), refund(1), NOW)  # nothing paid


def test_a_refund_makes_room_for_a_new_payment():
    r = apply(None, payments.record_payment(confirmed(), pay(50_000, "a"), NOW))
    r = apply(None, payments.refund_payment(r, refund(5_000), NOW))
    r = apply(None, payments.record_payment(r, pay(5_000, "b"), NOW))
    assert r.booking.payment.status == c.PAYMENT_STATUS_PAID


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 60_000)), max_size=30))
def test_any_sequence_keeps_zero_le_paid_less_refunded_le_final_price(steps):
    r = confirmed()
    for i, (is_pay, amount) in enumerate(steps):
        step = payments.record_payment if is_pay else payments.refund_payment
        request = pay(amount, f"p{i}") if is_pay else refund(amount, f"r{i}")
        try:
            r = apply(None, step(r, request, NOW))
        except FailedPrecondition:
            pass
        paid, refunded = payments.totals(r.booking)
        assert 0 <= paid - refunded <= r.booking.final_price.amount_minor
        assert r.booking.payment.paid.amount_minor == paid
        events = [e for e in r.booking.history]
        assert len(events) == len(r.booking.payment.entries)


# -- cancellation policy ----------------------------------------------------------------------


def test_late_is_measured_from_the_start_time_or_the_day_start():
    b = confirmed(start_time="10:00").booking  # 2026-11-25 10:00 IST = 04:30 UTC
    start = datetime(2026, 11, 25, 4, 30, tzinfo=UTC)
    assert payments.starts_at(b, IST) == start
    assert not payments.is_late(b, start - timedelta(hours=24, minutes=1), IST, 24)
    assert payments.is_late(b, start - timedelta(hours=23, minutes=59), IST, 24)
    assert not payments.is_late(b, start, IST, 0)  # no notice period: never late
    token = confirmed().booking
    assert payments.starts_at(token, IST, "09:00") == datetime(2026, 11, 25, 3, 30, tzinfo=UTC)
    assert payments.starts_at(token, IST) == datetime(2026, 11, 24, 18, 30, tzinfo=UTC)


def _cancelled_after_paying(late: bool, policy: str) -> saga_pb2.BookingRecord:
    r = apply(None, payments.record_payment(confirmed(), pay(30_000), NOW))
    r = apply(None, payments.refund_payment(r, refund(5_000), NOW))
    t = domain.cancel(r, "", NOW)
    payments.refund_due_on_cancel(t, late=late, policy=policy)
    return t.record


def test_a_paid_booking_cancelled_in_notice_is_owed_what_it_paid():
    r = _cancelled_after_paying(late=False, policy="full")
    assert r.booking.payment.refund_due.amount_minor == 25_000
    assert r.booking.payment.status == c.PAYMENT_STATUS_REFUND_DUE
    assert not r.late_cancellation
    r = apply(None, payments.refund_payment(r, refund(25_000, "back"), NOW))
    assert r.booking.payment.refund_due.amount_minor == 0
    assert r.booking.payment.status == c.PAYMENT_STATUS_REFUNDED


@pytest.mark.parametrize(("late", "policy"), [(True, "full"), (False, "none"), (True, "none")])
def test_late_or_no_refund_policy_owes_nothing(late, policy):
    r = _cancelled_after_paying(late=late, policy=policy)
    assert r.booking.payment.refund_due.amount_minor == 0
    assert r.late_cancellation == late


def test_an_unpaid_cancelled_booking_owes_nothing():
    t = domain.cancel(confirmed(), "", NOW)
    payments.refund_due_on_cancel(t, late=False, policy="full")
    assert t.record.booking.payment.status == c.PAYMENT_STATUS_UNSPECIFIED
    assert not t.record.booking.HasField("payment")


# -- the day's summary ------------------------------------------------------------------------


def test_day_summary_counts_statuses_money_discounts_and_doctors():
    paid = apply(None, payments.record_payment(confirmed(doctor_id="d1"), pay(50_000), NOW))
    discounted = confirmed(doctor_id="d1")
    discounted.booking.id = "b2"
    discounted.booking.discount.CopyFrom(
        c.Discount(outcome=c.DISCOUNT_OUTCOME_APPLIED, amount=c.Money(currency="INR", amount_minor=6_000))
    )
    late = _cancelled_after_paying(late=True, policy="full")
    other_day = confirmed()
    other_day.booking.appointment_date = "2026-11-26"
    s = reports.day_summary("2026-11-25", [paid, discounted, late, other_day], "INR", {"d1": 10, "d2": 5})
    assert s.bookings == 3
    assert {x.status: x.count for x in s.by_status} == {
        c.BOOKING_STATUS_CONFIRMED: 2,
        c.BOOKING_STATUS_CANCELLED: 1,
    }
    assert (s.cancellations, s.late_cancellations) == (1, 1)
    assert s.payments.amount_minor == 80_000
    assert s.refunds.amount_minor == 5_000
    assert s.net.amount_minor == 75_000
    assert (s.discounts, s.discount_amount.amount_minor) == (1, 6_000)
    assert [(d.doctor_id, d.capacity, d.booked) for d in s.doctors] == [("d1", 10, 2), ("d2", 5, 0)]


def test_payment_ledger_is_consistent_with_random_orders():
    rng = random.Random(7)
    r = confirmed(final=100_000)
    for i in range(100):
        try:
            if rng.random() < 0.6:
                r = apply(None, payments.record_payment(r, pay(rng.randint(1, 40_000), f"p{i}"), NOW))
            else:
                r = apply(None, payments.refund_payment(r, refund(rng.randint(1, 40_000), f"r{i}"), NOW))
        except FailedPrecondition:
            continue
    recorded = sum(1 for e in r.booking.history if e.type == c.EVENT_TYPE_PAYMENT_RECORDED)
    refunded = sum(1 for e in r.booking.history if e.type == c.EVENT_TYPE_PAYMENT_REFUNDED)
    kinds = [e.kind for e in r.booking.payment.entries]
    assert recorded == kinds.count(c.PAYMENT_ENTRY_KIND_PAYMENT)
    assert refunded == kinds.count(c.PAYMENT_ENTRY_KIND_REFUND)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CLINIC_REFUND_POLICY", "half"),
        ("CLINIC_PAYMENT_FSYNC", "always"),
        ("CLINIC_CANCEL_NOTICE_HOURS", "-1"),
    ],
)
def test_bad_money_settings_stop_the_process_naming_the_variable(name, value):
    from booking_svc.config import BookingConfig
    from clinic_common.config import ConfigError

    with pytest.raises(ConfigError, match=name):
        BookingConfig.from_env({name: value})


def test_money_settings_default_to_no_notice_full_refunds_and_fsynced_payments():
    from booking_svc.config import BookingConfig

    config = BookingConfig.from_env({})
    assert (config.cancel_notice_hours, config.refund_policy, config.payment_fsync) == (0, "full", "waitaof")
