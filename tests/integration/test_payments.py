"""Money at the desk through the gateway: references, payments, refunds, the day sheet and summary.

Every race here runs many real calls at once against the real services and counts what was taken.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest
import redis.asyncio as aioredis

from booking_svc import domain, payments
from booking_svc.store import REFERENCE_TAKEN, BookingStore, reference_key
from clinic.v1 import admin_pb2, booking_pb2
from clinic.v1 import common_pb2 as c
from tests.harness import Client, future_date, patient, today_ist, uid
from tests.integration.test_schedule import bad_fields

STAFF = Client.auth("desk-1", "staff")
ADMIN = Client.auth("boss", "admin")


def inr(amount_minor: int) -> c.Money:
    return c.Money(currency="INR", amount_minor=amount_minor)


async def confirmed(client: Client, services=("gen-consult",), **kw) -> c.Booking:
    kw.setdefault("appointment_date", future_date())
    booking = await client.create(patient(), list(services), **kw)
    booking = await client.settled(booking.id, notified=False)
    assert booking.status == c.BOOKING_STATUS_CONFIRMED
    return booking


async def pay(client: Client, booking_id: str, amount: int, request_id: str | None = None, md=STAFF, **kw):
    req = booking_pb2.RecordPaymentRequest(
        booking_id=booking_id,
        amount=inr(amount),
        method=kw.pop("method", c.PAYMENT_METHOD_CASH),
        request_id=request_id or uid("pay"),
        **kw,
    )
    return (await client.bookings.RecordPayment(req, metadata=md, timeout=10)).booking


async def refund(client: Client, booking_id: str, amount: int, request_id: str | None = None, md=ADMIN):
    req = booking_pb2.RefundPaymentRequest(
        booking_id=booking_id, amount=inr(amount), reason="test", request_id=request_id or uid("ref")
    )
    return (await client.bookings.RefundPayment(req, metadata=md, timeout=10)).booking


async def code_of(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


# -- references -------------------------------------------------------------------------------


async def test_a_booking_has_a_reference_that_finds_it(client: Client):
    booking = await confirmed(client)
    assert payments.normalise_reference(booking.reference) == booking.reference
    spoken = booking.reference.lower()[:3] + "-" + booking.reference.lower()[3:]
    assert (await client.get(spoken)).id == booking.id
    listed = await client.bookings.ListBookings(
        booking_pb2.ListBookingsRequest(reference=booking.reference), metadata=STAFF
    )
    assert [b.id for b in listed.bookings] == [booking.id]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.get("ZZZZZZZ")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_reference_is_claimed_once_whatever_races_for_it(servers):
    """20 creates drawing the same reference at once: one stores a booking, 19 store nothing.

    On a database of its own (db 15): the running services never see these bookings."""
    from tests.unit.test_booking_rules import CATALOG, IST, NOW, req

    redis = aioredis.Redis.from_url(servers.redis_url, db=15)
    try:
        store = BookingStore(redis)
        reference = payments.new_reference()
        transitions = [
            domain.create(req(request_id=uid("r")), CATALOG, uid("b"), NOW, IST, reference=reference)
            for _ in range(20)
        ]
        results = await asyncio.gather(*(store.create(t, 1) for t in transitions))
        winners = [r for r in results if r != REFERENCE_TAKEN]
        assert len(winners) == 1
        assert (await redis.get(reference_key(reference))).decode() == winners[0]
        for t in transitions:
            stored = await redis.exists(f"booking:{t.record.booking.id}")
            assert stored == (t.record.booking.id == winners[0])
    finally:
        await redis.flushdb()
        await redis.aclose()


# -- payments ---------------------------------------------------------------------------------


async def test_partial_payments_up_to_the_final_price(client: Client):
    booking = await confirmed(client)  # 500.00
    after = await pay(client, booking.reference, 20_000, method=c.PAYMENT_METHOD_UPI, reference="UPI123")
    assert after.payment.status == c.PAYMENT_STATUS_PARTIALLY_PAID
    assert after.history[-1].type == c.EVENT_TYPE_PAYMENT_RECORDED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pay(client, booking.id, 30_001)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert after.history[-1].actor == c.Actor(sub="desk-1", role="staff")  # who took the money
    after = await pay(client, booking.id, 30_000)
    assert after.payment.status == c.PAYMENT_STATUS_PAID
    assert after.payment.paid.amount_minor == 50_000
    assert (await client.get(booking.id)).payment == after.payment


async def test_twenty_concurrent_payments_never_take_more_than_the_final_price(client: Client):
    booking = await confirmed(client)  # 50_000 paise
    results = await asyncio.gather(
        *(code_of(pay(client, booking.id, 7_000)) for _ in range(20)), return_exceptions=False
    )
    ok = results.count(grpc.StatusCode.OK)
    assert ok == 7  # 7 x 7_000 = 49_000; an eighth would pass 50_000
    assert set(results) <= {grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION}
    stored = await client.get(booking.id)
    assert stored.payment.paid.amount_minor == 49_000
    assert sum(1 for e in stored.history if e.type == c.EVENT_TYPE_PAYMENT_RECORDED) == 7


async def test_the_same_request_id_twice_records_once(client: Client):
    booking = await confirmed(client)
    request_id = uid("same")
    first, second = await asyncio.gather(
        pay(client, booking.id, 10_000, request_id), pay(client, booking.id, 10_000, request_id)
    )
    third = await pay(client, booking.id, 10_000, request_id)
    assert first.payment.paid.amount_minor == second.payment.paid.amount_minor == 10_000
    assert third.payment == first.payment
    stored = await client.get(booking.id)
    assert len(stored.payment.entries) == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pay(client, booking.id, 5_000, request_id)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_concurrent_refunds_never_give_back_more_than_was_paid(client: Client):
    booking = await confirmed(client)
    await pay(client, booking.id, 50_000)
    results = await asyncio.gather(*(code_of(refund(client, booking.id, 15_000)) for _ in range(10)))
    assert results.count(grpc.StatusCode.OK) == 3
    same = uid("r")
    again = await asyncio.gather(*(refund(client, booking.id, 5_000, same) for _ in range(3)))
    assert {b.payment.refunded.amount_minor for b in again} == {50_000}
    stored = await client.get(booking.id)
    assert stored.payment.refunded.amount_minor == 50_000
    assert stored.payment.status == c.PAYMENT_STATUS_REFUNDED
    assert sum(1 for e in stored.history if e.type == c.EVENT_TYPE_PAYMENT_REFUNDED) == 4


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": inr(0)}, "amount.amount_minor"),
        ({"amount": inr(-100)}, "amount.amount_minor"),
        ({"amount": c.Money(currency="USD", amount_minor=100)}, "amount.currency"),
        ({"method": 42}, "method"),
        ({"method": c.PAYMENT_METHOD_UNSPECIFIED}, "method"),
        ({"reference": "x" * 65}, "reference"),
        ({"request_id": ""}, "request_id"),
    ],
)
async def test_bad_payments_are_refused_naming_the_field_and_record_nothing(client: Client, change, field):
    booking = await confirmed(client)
    fields = {
        "booking_id": booking.id,
        "amount": inr(100),
        "method": c.PAYMENT_METHOD_CARD,
        "request_id": uid("r"),
    }
    fields.update(change)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.bookings.RecordPayment(booking_pb2.RecordPaymentRequest(**fields), metadata=STAFF)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in bad_fields(err.value)
    stored = await client.get(booking.id)
    assert not stored.HasField("payment")
    assert not {e.type for e in stored.history} & {
        c.EVENT_TYPE_PAYMENT_RECORDED,
        c.EVENT_TYPE_PAYMENT_REFUNDED,
    }


async def test_payments_need_a_confirmed_booking_and_the_right_role(client: Client):
    pending = await client.create(patient(), ["gen-consult"], appointment_date=future_date())
    cancelled = await client.cancel(pending.id)
    assert await code_of(pay(client, cancelled.id, 100)) == grpc.StatusCode.FAILED_PRECONDITION
    booking = await confirmed(client)
    own = Client.auth(booking.patient.id, "patient")
    assert await code_of(pay(client, booking.id, 100, md=own)) == grpc.StatusCode.PERMISSION_DENIED
    await pay(client, booking.id, 100)
    assert await code_of(refund(client, booking.id, 100, md=STAFF)) == grpc.StatusCode.PERMISSION_DENIED
    assert await code_of(refund(client, booking.id, 100, md=own)) == grpc.StatusCode.PERMISSION_DENIED
    assert (await client.get(booking.id)).payment.refunded.amount_minor == 0


async def test_a_paid_booking_cancelled_is_owed_its_money_back(client: Client):
    booking = await confirmed(client)
    await pay(client, booking.id, 30_000)
    cancelled = await client.cancel(booking.id, "changed plans")
    assert cancelled.payment.refund_due.amount_minor == 30_000
    assert cancelled.payment.status == c.PAYMENT_STATUS_REFUND_DUE
    back = await refund(client, booking.id, 30_000)
    assert back.history[-1].type == c.EVENT_TYPE_PAYMENT_REFUNDED
    assert back.history[-1].actor == c.Actor(sub="boss", role="admin")
    assert back.payment.status == c.PAYMENT_STATUS_REFUNDED
    assert back.payment.refund_due.amount_minor == 0


# -- the day sheet and the day's summary ------------------------------------------------------


async def test_list_bookings_by_date_range_pages_through_every_day(client: Client):
    doctor = await client.doctor(daily_capacity=20)
    first = today_ist() + timedelta(days=40)
    days = [(first + timedelta(days=i)).isoformat() for i in range(3)]
    made = []
    for day in days:
        for _ in range(3):
            made.append(
                (
                    await client.create(patient(), ["gen-consult"], appointment_date=day, doctor_id=doctor.id)
                ).id
            )
    seen: list[str] = []
    token = ""
    while True:
        page = await client.bookings.ListBookings(
            booking_pb2.ListBookingsRequest(
                date_from=days[0], date_to=days[2], doctor_id="", page_size=4, page_token=token
            ),
            metadata=STAFF,
        )
        seen += [b.id for b in page.bookings if b.id in made]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen))
    one_day = await client.bookings.ListBookings(
        booking_pb2.ListBookingsRequest(date_from=days[1], date_to=days[1], doctor_id=doctor.id),
        metadata=STAFF,
    )
    assert sorted(b.id for b in one_day.bookings) == sorted(made[3:6])
    patient_md = Client.auth("someone", "patient")
    assert (
        await code_of(
            client.bookings.ListBookings(
                booking_pb2.ListBookingsRequest(patient_id="someone", date_from=days[0], date_to=days[1]),
                metadata=patient_md,
            )
        )
        == grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_day_summary_counts_the_days_money(client: Client):
    day = (today_ist() + timedelta(days=365)).isoformat()  # future_date() picks 1..360: this day is ours
    doctor = await client.doctor(daily_capacity=7)
    a = await confirmed(client, appointment_date=day, doctor_id=doctor.id)
    b = await confirmed(client, appointment_date=day, doctor_id=doctor.id)
    await pay(client, a.id, 50_000)
    await pay(client, b.id, 20_000)
    await client.cancel(b.id)
    await refund(client, b.id, 20_000)
    req = admin_pb2.GetDaySummaryRequest(date=day)
    summary = (await client.admin_api.GetDaySummary(req, metadata=ADMIN)).summary
    assert summary.bookings == 2
    assert {s.status: s.count for s in summary.by_status} == {
        c.BOOKING_STATUS_CONFIRMED: 1,
        c.BOOKING_STATUS_CANCELLED: 1,
    }
    assert (summary.payments.amount_minor, summary.refunds.amount_minor, summary.net.amount_minor) == (
        70_000,
        20_000,
        50_000,
    )
    assert (summary.cancellations, summary.late_cancellations) == (1, 0)
    assert [(d.doctor_id, d.capacity, d.booked) for d in summary.doctors] == [(doctor.id, 7, 1)]
    assert (
        await code_of(client.admin_api.GetDaySummary(req, metadata=STAFF))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    # the rest of AdminService still answers from discount_svc
    assert (await client.quota()).limit > 0
