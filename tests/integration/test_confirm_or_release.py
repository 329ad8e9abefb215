"""Confirm or release (CLINIC_CONFIRM_BY) over a real Redis: a booking asked to confirm and silent by
its deadline is cancelled once ("not confirmed"); a confirmed one, or one booked after the question,
stays. ConfirmAttendance through the gateway: the patient's own, staff and admin."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest

from booking_svc import domain
from booking_svc.attendance import Releases
from booking_svc.saga import Bookings
from booking_svc.store import BookingStore
from clinic.v1 import booking_pb2, saga_pb2
from clinic.v1 import common_pb2 as c
from clinic_common.catalog import DEFAULT_CATALOG, load
from clinic_common.clock import FixedClock
from clinic_common.principal import ANONYMOUS_ADMIN
from tests.harness import Client, future_date, patient, uid

IST = ZoneInfo("Asia/Kolkata")


def past_day() -> tuple[str, datetime]:
    """A day long gone (and a moment before it to book at): no other test books in the past, so a
    sweep of it sees only this test's bookings; the running system's own sweeps look at recent days."""
    base = datetime.now(IST) - timedelta(days=6000 + uuid.uuid4().int % 3000)  # apart from test_no_shows
    return (base + timedelta(days=7)).date().isoformat(), base


CONFIRM_BY, FIRST_REMINDER = timedelta(hours=4), timedelta(hours=24)


def instance(redis, clock) -> Bookings:
    async def publish(message: saga_pb2.OutboxMessage) -> None:
        pass

    return Bookings(BookingStore(redis), publish, load(DEFAULT_CATALOG), IST, timeout_s=600, clock=clock)


async def confirmed(redis, day: str, at: datetime) -> c.Booking:
    made = instance(redis, FixedClock(at))
    request = booking_pb2.CreateBookingRequest(
        patient=patient(), service_ids=["gen-consult"], appointment_date=day, request_id=uid("cr")
    )
    created = await made.create(request, ANONYMOUS_ADMIN)
    decided = saga_pb2.DiscountDecided(
        booking_id=created.id, discount=c.Discount(outcome=c.DISCOUNT_OUTCOME_NOT_ELIGIBLE), message="n/a"
    )
    await made.on_discount_decided(decided)
    return await made.get(created.id, ANONYMOUS_ADMIN)


def releases(redis, clock) -> Releases:
    return Releases(instance(redis, clock), BookingStore(redis), None, IST, CONFIRM_BY, FIRST_REMINDER, clock)


async def test_the_silent_are_released_once_the_confirmed_and_the_late_booked_stay(redis):
    day, _ = past_day()
    start = datetime.fromisoformat(day).replace(hour=9, tzinfo=IST)  # no time, no doctor: 09:00
    early = start - timedelta(days=5)
    silent, sure = await confirmed(redis, day, early), await confirmed(redis, day, early)
    late_booked = await confirmed(redis, day, start - FIRST_REMINDER + timedelta(hours=1))  # never asked
    confirming = instance(redis, FixedClock(start - timedelta(hours=10)))
    await confirming.confirm_attendance(sure.id, ANONYMOUS_ADMIN)
    again = await confirming.confirm_attendance(sure.id, ANONYMOUS_ADMIN)  # a repeat changes nothing
    assert [e.type for e in again.history].count(c.EVENT_TYPE_ATTENDANCE_CONFIRMED) == 1

    before = FixedClock(start - CONFIRM_BY - timedelta(seconds=1))
    assert await releases(redis, before).sweep() == 0
    deadline = FixedClock(start - CONFIRM_BY)
    # Every instance sweeps at the same moment: the booking is cancelled once.
    counts = await asyncio.gather(*(releases(redis, deadline).sweep() for _ in range(8)))
    assert sum(counts) == 1

    reader = instance(redis, deadline)
    gone = await reader.get(silent.id, ANONYMOUS_ADMIN)
    assert gone.status == c.BOOKING_STATUS_CANCELLED
    assert gone.status_message == "Booking cancelled: not confirmed"
    assert [e.type for e in gone.history].count(c.EVENT_TYPE_BOOKING_CANCELLED) == 1
    assert (await reader.get(sure.id, ANONYMOUS_ADMIN)).status == c.BOOKING_STATUS_CONFIRMED
    assert (await reader.get(late_booked.id, ANONYMOUS_ADMIN)).status == c.BOOKING_STATUS_CONFIRMED


def test_the_release_rule():
    start = datetime(2026, 12, 10, 9, 0, tzinfo=IST)
    b = c.Booking(status=c.BOOKING_STATUS_CONFIRMED, appointment_date="2026-12-10")
    b.created_at.FromDatetime(start - timedelta(days=3))
    assert not domain.release_due(
        b, start, CONFIRM_BY, FIRST_REMINDER, start - CONFIRM_BY - timedelta(seconds=1)
    )
    assert domain.release_due(b, start, CONFIRM_BY, FIRST_REMINDER, start - CONFIRM_BY)
    assert not domain.release_due(b, start, CONFIRM_BY, FIRST_REMINDER, start)  # the visit began: too late
    assert not domain.release_due(b, start, CONFIRM_BY, timedelta(hours=3), start - CONFIRM_BY)  # never asked
    b.attendance_confirmed_at.FromDatetime(start - timedelta(days=1))
    assert not domain.release_due(b, start, CONFIRM_BY, FIRST_REMINDER, start - CONFIRM_BY)


async def test_confirm_attendance_is_the_patients_own(client: Client):
    booking = await client.create(patient(), ["gen-consult"], appointment_date=future_date())
    await client.settled(booking.id)
    req = booking_pb2.ConfirmAttendanceRequest(booking_id=booking.id)
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await client.bookings.ConfirmAttendance(req, metadata=client.auth("someone-else", "patient"))
    assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    own = client.auth(booking.patient.id, "patient")
    done = (await client.bookings.ConfirmAttendance(req, metadata=own)).booking
    assert done.HasField("attendance_confirmed_at")
    assert done.history[-1].type == c.EVENT_TYPE_ATTENDANCE_CONFIRMED
    await client.cancel(booking.id)
    with pytest.raises(grpc.aio.AioRpcError) as cancelled:
        await client.bookings.ConfirmAttendance(req, metadata=client.auth("desk", "staff"))
    assert cancelled.value.code() == grpc.StatusCode.FAILED_PRECONDITION
