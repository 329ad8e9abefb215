"""No-shows over a real Redis and NATS: after a day ends, a CONFIRMED booking never checked in gets
NO_SHOW once (however many instances sweep at once); one that checked in, or whose day has not
ended CLINIC_NO_SHOW_AFTER ago, is left alone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from booking_svc import domain
from booking_svc.attendance import NoShows
from booking_svc.saga import Bookings
from booking_svc.store import BookingStore
from clinic.v1 import booking_pb2, doctor_pb2, frontdesk_pb2, patient_pb2, saga_pb2
from clinic.v1 import common_pb2 as c
from clinic_common import nats_io, subjects
from clinic_common.catalog import DEFAULT_CATALOG, load
from clinic_common.clock import FixedClock
from clinic_common.principal import ANONYMOUS_ADMIN
from tests.harness import Client, patient, uid, wait_for

IST = ZoneInfo("Asia/Kolkata")


def past_day() -> tuple[str, datetime]:
    """A day long gone (and a moment before it to book at): no other test books in the past, so a
    sweep of it sees only this test's bookings; the running system's own sweeps look at recent days."""
    base = datetime.now(IST) - timedelta(days=500 + uuid.uuid4().int % 5000)
    return (base + timedelta(days=7)).date().isoformat(), base


AFTER = timedelta(hours=2)


def instance(redis, clock, js=None) -> Bookings:
    """booking_svc's use cases in-process; with `js`, its saga messages go out for real."""

    async def publish(message: saga_pb2.OutboxMessage) -> None:
        if js is not None and message.subject.startswith(subjects.PATIENT_NO_SHOW):
            await nats_io.publish(js, message.subject, message.payload, message.msg_id)

    return Bookings(BookingStore(redis), publish, load(DEFAULT_CATALOG), IST, timeout_s=600, clock=clock)


async def confirmed(bookings: Bookings, day: str, who: c.Patient | None = None) -> c.Booking:
    request = booking_pb2.CreateBookingRequest(
        patient=who or patient(), service_ids=["gen-consult"], appointment_date=day, request_id=uid("ns")
    )
    created = await bookings.create(request, ANONYMOUS_ADMIN)
    decided = saga_pb2.DiscountDecided(
        booking_id=created.id, discount=c.Discount(outcome=c.DISCOUNT_OUTCOME_NOT_ELIGIBLE), message="n/a"
    )
    await bookings.on_discount_decided(decided)
    done = await bookings.get(created.id, ANONYMOUS_ADMIN)
    assert done.status == c.BOOKING_STATUS_CONFIRMED
    return done


def sweeper(bookings: Bookings, redis, js, clock) -> NoShows:
    return NoShows(bookings, BookingStore(redis), js, None, IST, AFTER, clock=clock)


async def test_a_day_that_ended_marks_the_unseen_once_and_leaves_the_checked_in(redis, js):
    day, booked_at = past_day()
    made = instance(redis, FixedClock(booked_at))
    unseen, came = await confirmed(made, day), await confirmed(made, day)
    change = frontdesk_pb2.QueueChange(
        kind=frontdesk_pb2.QueueChange.KIND_CHECKED_IN,
        sequence=1,
        visit=frontdesk_pb2.Visit(booking_id=came.id, patient_id=came.patient.id, position=1),
    )
    await js.publish(subjects.visit_subject("", day, came.id), change.SerializeToString())  # as frontdesk

    end = datetime.fromisoformat(day).replace(tzinfo=IST) + timedelta(days=1)  # no doctor: midnight
    early = FixedClock(end + AFTER - timedelta(minutes=1))
    assert await sweeper(instance(redis, early), redis, js, early).sweep() == 0
    late = FixedClock(end + AFTER)
    # Several instances sweep at once: the booking is marked once.
    sweeps = [sweeper(instance(redis, late), redis, js, late) for _ in range(6)]
    marked = await asyncio.gather(*(s.sweep() for s in sweeps))
    assert sum(marked) == 1

    after = await made.get(unseen.id, ANONYMOUS_ADMIN)
    assert after.attendance == c.ATTENDANCE_NO_SHOW and after.status == c.BOOKING_STATUS_CONFIRMED
    assert [e.type for e in after.history].count(c.EVENT_TYPE_NO_SHOW) == 1
    assert (await made.get(came.id, ANONYMOUS_ADMIN)).attendance == c.ATTENDANCE_UNKNOWN
    assert await sweeps[0].sweep() == 0  # a later sweep changes nothing


async def test_the_patient_counts_each_no_show_once(client: Client, redis, js):
    """schedule_svc (the running system) counts the no-show on the registered patient, once."""
    register = patient_pb2.RegisterPatientRequest(
        name="Nisha Verma",
        phone="+9197" + str(uuid.uuid4().int)[:8],
        gender=c.GENDER_FEMALE,
        date_of_birth="1988-08-08",
    )
    who = (await client.patients.RegisterPatient(register, metadata=client.auth())).patient
    day, booked_at = past_day()
    made = instance(redis, FixedClock(booked_at))
    first, second = await confirmed(made, day, who), await confirmed(made, day, who)
    late = FixedClock(datetime.fromisoformat(day).replace(tzinfo=IST) + timedelta(days=1) + AFTER)
    sweep = NoShows(instance(redis, late, js), BookingStore(redis), js, None, IST, AFTER, clock=late)
    assert await sweep.sweep() == 2
    # The same message again (a redelivery, a replay) counts nothing more.
    again = saga_pb2.PatientNoShow(booking_id=first.id, patient_id=who.id)
    await js.publish(
        subjects.saga_subject(subjects.PATIENT_NO_SHOW, first.id),
        again.SerializeToString(),
        headers={"Nats-Msg-Id": uid("again")},
    )

    async def counted():
        got = patient_pb2.GetPatientRequest(patient_id=who.id)
        return (await client.patients.GetPatient(got, metadata=client.auth())).patient.no_show_count == 2

    await wait_for(counted, 15, "no_show_count 2")
    await wait_for(lambda: _quiet(js), 15, "schedule-svc to take the repeated message")
    assert await counted()  # still 2: each booking counts once
    assert second.id != first.id


async def _quiet(js) -> bool:
    info = await js.consumer_info(subjects.SAGA_STREAM, subjects.SCHEDULE_CONSUMER)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def test_many_instances_marking_one_booking_at_once_mark_it_once(redis):
    """The race: every instance judged the day over and calls at the same moment; one wins."""
    day, booked_at = past_day()
    made = instance(redis, FixedClock(booked_at))
    booking = await confirmed(made, day)
    copies = [instance(redis, FixedClock(booked_at)) for _ in range(12)]
    for copy in copies:
        await copy.get(booking.id, ANONYMOUS_ADMIN)  # each remembers the same CONFIRMED version
    won = await asyncio.gather(*(copy.mark_no_show(booking.id) for copy in copies))
    assert won.count(True) == 1
    after = await made.get(booking.id, ANONYMOUS_ADMIN)
    assert [e.type for e in after.history].count(c.EVENT_TYPE_NO_SHOW) == 1


def test_the_no_show_rule():
    b = c.Booking(status=c.BOOKING_STATUS_CONFIRMED, appointment_date="2026-12-10")
    end = datetime(2026, 12, 10, 17, 0, tzinfo=IST)
    assert not domain.no_show_due(b, "17:00", AFTER, IST, end + AFTER - timedelta(seconds=1))
    assert domain.no_show_due(b, "17:00", AFTER, IST, end + AFTER)
    assert not domain.no_show_due(b, "", AFTER, IST, end + AFTER)  # no doctor: the day ends at midnight
    cancelled = c.Booking(status=c.BOOKING_STATUS_CANCELLED, appointment_date="2026-12-10")
    assert not domain.no_show_due(cancelled, "17:00", AFTER, IST, end + timedelta(days=1))


class PlannedDay:
    """schedule_svc's answers for one doctor: usually 09:00-17:00, but on `day` the plan ends the
    day at 12:00 (a stand-in for the registry's gRPC client, with its two calls the sweep uses)."""

    def __init__(self, doctor_id: str, day: str) -> None:
        self.doctor_id, self.day = doctor_id, day

    async def doctor(self, doctor_id: str, who):
        return doctor_pb2.Doctor(
            id=doctor_id, code="DR-PLAN", service_ids=["gen-consult"], day_start="09:00", day_end="17:00"
        )

    async def day_hours(self, doctor_id: str, day: str, who) -> tuple[str, str]:
        return ("09:00", "12:00") if (doctor_id, day) == (self.doctor_id, self.day) else ("09:00", "17:00")


async def test_the_day_ends_when_that_dates_plan_ends_it_not_at_the_doctors_usual_hours(redis, js):
    day, booked_at = past_day()
    plan = PlannedDay(uid("d-"), day)
    made = Bookings(
        BookingStore(redis),
        lambda m: asyncio.sleep(0),
        load(DEFAULT_CATALOG),
        IST,
        timeout_s=600,
        clock=FixedClock(booked_at),
        schedule=plan,
    )
    request = booking_pb2.CreateBookingRequest(
        patient=patient(), service_ids=["gen-consult"], appointment_date=day, doctor_id=plan.doctor_id
    )
    created = await made.create(request, ANONYMOUS_ADMIN)
    decided = saga_pb2.DiscountDecided(
        booking_id=created.id, discount=c.Discount(outcome=c.DISCOUNT_OUTCOME_NOT_ELIGIBLE), message="n/a"
    )
    await made.on_discount_decided(decided)
    noon = datetime.fromisoformat(day).replace(tzinfo=IST) + timedelta(hours=12)
    at = FixedClock(noon + AFTER)  # past 12:00 + 2 h, well before 17:00 + 2 h
    sweep = NoShows(made, BookingStore(redis), js, plan, IST, AFTER, clock=at)
    assert await sweep.sweep() == 1
    assert (await made.get(created.id, ANONYMOUS_ADMIN)).attendance == c.ATTENDANCE_NO_SHOW
