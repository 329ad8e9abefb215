"""Money that returned OK survives valkey's SIGKILL, and the cancellation policy, on a system of its
own (the crash test kills valkey; the policy needs CLINIC_CANCEL_NOTICE_HOURS)."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from clinic.v1 import admin_pb2, booking_pb2
from clinic.v1 import common_pb2 as c
from tests.harness import Client, Servers, System, future_date, redis_client, today_ist, wait_for
from tests.integration.test_payments import ADMIN, STAFF, confirmed, pay, refund

NOTICE_HOURS = 48


@pytest.fixture(scope="module")
async def own(tmp_path_factory):
    servers = Servers(tmp_path_factory.mktemp("money")).start()
    system = System(servers, env={"CLINIC_CANCEL_NOTICE_HOURS": str(NOTICE_HOURS)}).start()
    client = Client(system.gateway_addr)
    yield servers, system, client
    await client.close()
    system.stop()
    servers.stop()


async def test_a_payment_that_answered_ok_survives_sigkill_of_valkey(own):
    servers, _, client = own
    booking = await confirmed(client, appointment_date=future_date(30))
    paid = await pay(client, booking.id, 12_345)
    servers.redis.kill()  # SIGKILL right after the answer: no shutdown, no final fsync
    servers.start_redis()  # same data dir: valkey loads its append-only file

    async def read_back():
        try:
            return await client.get(booking.id)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return None

    again = await wait_for(
        read_back, timeout_s=30, what="booking_svc to read the booking after valkey restarted"
    )
    assert again.payment == paid.payment
    assert again.payment.paid.amount_minor == 12_345
    assert again.history[-1].type == c.EVENT_TYPE_PAYMENT_RECORDED
    refunded = await refund(client, booking.id, 345)
    servers.redis.kill()
    servers.start_redis()
    again = await wait_for(read_back, timeout_s=30, what="the refund after valkey restarted")
    assert again.payment.refunded.amount_minor == 345 == refunded.payment.refunded.amount_minor


async def test_a_patient_cannot_cancel_late_staff_can_and_the_late_paid_booking_is_owed_nothing(own):
    _, _, client = own
    tomorrow = (today_ist() + timedelta(days=1)).isoformat()  # inside 48 h of its midnight start
    booking = await confirmed(client, appointment_date=tomorrow)
    await pay(client, booking.id, 50_000)
    own_md = Client.auth(booking.patient.id, "patient")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.bookings.CancelBooking(
            booking_pb2.CancelBookingRequest(booking_id=booking.id), metadata=own_md
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await client.get(booking.id)).status == c.BOOKING_STATUS_CONFIRMED
    cancelled = (
        await client.bookings.CancelBooking(
            booking_pb2.CancelBookingRequest(booking_id=booking.id), metadata=STAFF
        )
    ).booking
    assert cancelled.status == c.BOOKING_STATUS_CANCELLED
    assert cancelled.payment.refund_due.amount_minor == 0
    assert cancelled.payment.status == c.PAYMENT_STATUS_PAID
    summary = (
        await client.admin_api.GetDaySummary(admin_pb2.GetDaySummaryRequest(date=tomorrow), metadata=ADMIN)
    ).summary
    assert summary.late_cancellations >= 1


async def test_a_patient_cancelling_in_notice_is_owed_what_was_paid(own):
    _, _, client = own
    booking = await confirmed(client, appointment_date=future_date(20))
    await pay(client, booking.id, 20_000)
    own_md = Client.auth(booking.patient.id, "patient")
    cancelled = (
        await client.bookings.CancelBooking(
            booking_pb2.CancelBookingRequest(booking_id=booking.id), metadata=own_md
        )
    ).booking
    assert cancelled.payment.refund_due.amount_minor == 20_000
    assert cancelled.payment.status == c.PAYMENT_STATUS_REFUND_DUE


async def test_a_payment_is_not_answered_ok_when_valkey_cannot_fsync_it(own):
    """With the append-only file switched off WAITAOF cannot promise the disk: the payment answers
    UNAVAILABLE (this is how the test sees that every payment waits for the fsync)."""
    servers, _, client = own
    booking = await confirmed(client, appointment_date=future_date(30))
    redis = await redis_client(servers)
    try:
        await redis.config_set("appendonly", "no")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pay(client, booking.id, 100, request_id="no-aof")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "fsync" in err.value.details()
    finally:
        await redis.config_set("appendonly", "yes")
        await redis.aclose()

    async def answered():
        try:
            return await pay(client, booking.id, 100, request_id="no-aof")
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return None

    # the retry with the same request id finds the payment stored and now confirms it on disk, once
    again = await wait_for(answered, what="the retried payment to answer once the AOF is back")
    assert again.payment.paid.amount_minor == 100
    assert len(again.payment.entries) == 1
