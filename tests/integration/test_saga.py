"""The seed scenarios, driven through the gateway against the real services."""

from __future__ import annotations

import asyncio

import nats

from clinic.v1 import common_pb2 as c
from clinic.v1 import notification_pb2
from clinic_common import subjects
from clinic_common.subjects import booking_id_of  # noqa: F401 - documents the subject layout
from discount_svc.store import used_key
from tests.conftest import TEST_QUOTA
from tests.harness import Client, birthday_patient, future_date, patient, today_ist, uid, wait_for

E = c.EventType


def types(booking: c.Booking) -> list[str]:
    return [E.Name(e.type).removeprefix("EVENT_TYPE_") for e in booking.history]


async def set_used(redis, value: int) -> None:
    await redis.set(used_key(today_ist().isoformat()), value)


async def test_birthday_discount_is_applied_and_confirmed(client: Client, redis):
    await set_used(redis, 0)
    booking = await client.create(
        birthday_patient(), ["gen-consult", "blood-panel"], appointment_date=future_date()
    )
    assert booking.status == c.BOOKING_STATUS_PENDING
    assert booking.base_price.amount_minor == 115000

    done = await client.settled(booking.id)
    assert done.status == c.BOOKING_STATUS_CONFIRMED
    assert done.discount.outcome == c.DISCOUNT_OUTCOME_APPLIED
    assert done.discount.percent == 12
    assert done.discount.amount.amount_minor == 13800  # 12% of ₹1,150.00
    assert done.final_price.amount_minor == 101200
    assert done.discount.quota_date == today_ist().isoformat()
    assert types(done) == [
        "BOOKING_CREATED",
        "PLACES_RESERVED",
        "DISCOUNT_APPLIED",
        "BOOKING_CONFIRMED",
    ]
    assert [e.sequence for e in done.history] == [1, 2, 3, 4]
    assert (await client.quota()).used == 1


async def test_not_eligible_booking_is_confirmed_at_full_price_without_touching_quota(client, redis):
    await set_used(redis, 0)
    booking = await client.create(patient(), ["gen-consult"], appointment_date=future_date())
    done = await client.settled(booking.id)
    assert done.status == c.BOOKING_STATUS_CONFIRMED
    assert done.discount.outcome == c.DISCOUNT_OUTCOME_NOT_ELIGIBLE
    assert done.final_price.amount_minor == 50000
    assert types(done)[:4] == [
        "BOOKING_CREATED",
        "PLACES_RESERVED",
        "DISCOUNT_NOT_ELIGIBLE",
        "BOOKING_CONFIRMED",
    ]
    assert (await client.quota()).used == 0


async def test_threshold_is_strict_and_high_value_earns_the_discount(client, redis):
    await set_used(redis, 0)
    at_threshold = await client.create(patient(), ["threshold"], appointment_date=future_date())
    over = await client.create(patient(), ["ultrasound"], appointment_date=future_date())
    assert (await client.settled(at_threshold.id)).discount.outcome == c.DISCOUNT_OUTCOME_NOT_ELIGIBLE
    over_done = await client.settled(over.id)
    assert over_done.discount.outcome == c.DISCOUNT_OUTCOME_APPLIED
    assert over_done.final_price.amount_minor == 150000 - 18000


async def test_quota_exhausted_rejects_with_the_contract_message(client, redis):
    await set_used(redis, TEST_QUOTA)
    booking = await client.create(birthday_patient(), ["gen-consult"], appointment_date=future_date())
    done = await client.settled(booking.id)
    assert done.status == c.BOOKING_STATUS_REJECTED
    assert done.rejection_reason == c.REJECTION_REASON_QUOTA_EXHAUSTED
    assert done.status_message == "Daily discount quota reached"
    assert done.discount.outcome == c.DISCOUNT_OUTCOME_QUOTA_EXHAUSTED
    assert types(done)[:4] == ["BOOKING_CREATED", "PLACES_RESERVED", "DISCOUNT_REJECTED", "BOOKING_REJECTED"]
    assert types(done)[4:] == ["PLACES_RELEASED"]  # the places went back
    assert (await client.quota()).used == TEST_QUOTA
    await set_used(redis, 0)


async def test_a_booking_refused_for_places_never_touches_the_quota(client, redis):
    await set_used(redis, 0)
    day = future_date()
    first = await client.create(patient(), ["single-slot"], appointment_date=day)
    assert (await client.settled(first.id)).status == c.BOOKING_STATUS_CONFIRMED
    assert (await client.quota()).used == 1

    second = await client.create(patient(), ["single-slot"], appointment_date=day)
    done = await client.settled(second.id)
    assert done.status == c.BOOKING_STATUS_REJECTED
    assert done.rejection_reason == c.REJECTION_REASON_CAPACITY_UNAVAILABLE
    assert done.discount.outcome == c.DISCOUNT_OUTCOME_UNSPECIFIED  # never asked for a discount
    assert types(done) == ["BOOKING_CREATED", "BOOKING_REJECTED"]
    assert (await client.quota()).used == 1  # only the confirmed booking holds a unit


async def test_blocklisted_patient_is_rejected_without_taking_quota(client, redis):
    await set_used(redis, 0)
    booking = await client.create(patient("fail_test_user"), ["ultrasound"], appointment_date=future_date())
    done = await client.settled(booking.id)
    assert done.status == c.BOOKING_STATUS_REJECTED
    assert done.rejection_reason == c.REJECTION_REASON_PATIENT_BLOCKED
    assert done.discount.outcome == c.DISCOUNT_OUTCOME_PATIENT_BLOCKED
    assert types(done).count("PLACES_RELEASED") == 1
    assert (await client.quota()).used == 0


async def test_cancel_releases_quota_and_the_place(client, redis):
    await set_used(redis, 0)
    day = future_date()
    booking = await client.create(patient(), ["single-slot"], appointment_date=day)
    assert (await client.settled(booking.id)).status == c.BOOKING_STATUS_CONFIRMED
    assert (await client.quota()).used == 1

    cancelled = await client.cancel(booking.id, "patient asked")
    assert cancelled.status == c.BOOKING_STATUS_CANCELLED
    await wait_for(lambda: _has(client, booking.id, "QUOTA_RELEASED"), what="quota release")
    await wait_for(lambda: _has(client, booking.id, "PLACES_RELEASED"), what="places release")
    assert (await client.quota()).used == 0
    again = await client.create(patient(), ["single-slot"], appointment_date=day)  # the place is free again
    assert (await client.settled(again.id)).status == c.BOOKING_STATUS_CONFIRMED


async def test_cancel_of_a_final_booking_is_a_failed_precondition(client):
    import grpc

    booking = await client.create(patient("fail_test_user"), ["gen-consult"], appointment_date=future_date())
    await client.settled(booking.id)
    try:
        await client.cancel(booking.id)
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    else:
        raise AssertionError("cancelling a rejected booking must fail")


async def test_watch_replays_after_the_fact_in_order_and_ends(client):
    booking = await client.create(patient(), ["gen-consult"], appointment_date=future_date())
    done = await client.settled(booking.id)
    events = await client.watch(booking.id)
    assert [e.sequence for e in events] == list(range(1, len(done.history) + 1))
    assert [e.type for e in events] == [e.type for e in done.history]


async def test_watch_live_from_creation_sees_every_event_once_and_ends_on_the_outcome(client):
    booking = await client.create(patient(), ["gen-consult"], appointment_date=future_date())
    events = await client.watch(booking.id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == c.EVENT_TYPE_BOOKING_CREATED
    assert events[-1].status == c.BOOKING_STATUS_CONFIRMED


async def test_watch_patient_streams_events_of_new_bookings(client):
    who = uid("watcher")
    stream = client.notifications.WatchPatient(
        notification_pb2.WatchPatientRequest(patient_id=who), metadata=client.auth()
    )
    seen: list[c.BookingEvent] = []

    async def read():
        async for item in stream:
            seen.append(item.event)
            if item.event.status == c.BOOKING_STATUS_CONFIRMED:
                return

    reader = asyncio.create_task(read())
    assert ("x-clinic-watch", "live") in tuple(await asyncio.wait_for(stream.initial_metadata(), 10))
    booking = await client.create(patient(who), ["gen-consult"], appointment_date=future_date())
    await asyncio.wait_for(reader, 20)
    stream.cancel()
    assert {e.booking_id for e in seen} == {booking.id}
    assert seen[-1].type == c.EVENT_TYPE_BOOKING_CONFIRMED


async def _has(client: Client, booking_id: str, kind: str) -> bool:
    return kind in types(await client.get(booking_id))


async def test_a_confirmed_booking_costs_three_saga_messages_each_once(client: Client, servers):
    """The hot path's shape (issues 12, 20): the places request, the reservation straight to
    discount_svc and its decision; nothing else on SAGA, and four public events on BOOKING_EVENTS.
    Notifications are not in the saga: notification_svc reads the events themselves. A step put
    back in (booking_svc asking for the discount itself, a notification receipt) shows here."""
    booking = await client.create(patient(), ["gen-consult"], appointment_date=future_date())
    done = await client.settled(booking.id)
    assert types(done) == [
        "BOOKING_CREATED",
        "PLACES_RESERVED",
        "DISCOUNT_NOT_ELIGIBLE",
        "BOOKING_CONFIRMED",
    ]
    nc = await nats.connect(servers.nats_url)
    try:
        js = nc.jetstream()
        saga = [  # saga.<step>.<verb>.<id>, and anything one token shorter
            *await _stored(js, subjects.SAGA_STREAM, f"saga.*.*.{booking.id}"),
            *await _stored(js, subjects.SAGA_STREAM, f"saga.*.{booking.id}"),
        ]
        events = await _stored(js, subjects.EVENTS_STREAM, subjects.event_subject(booking.id))

    finally:
        await nc.close()
    assert sorted(saga) == sorted(
        subjects.saga_subject(prefix, booking.id)
        for prefix in (
            subjects.PLACES_REQUESTED,
            subjects.PLACES_RESERVED,
            subjects.DISCOUNT_DECIDED,
        )
    )
    assert events == [subjects.event_subject(booking.id)] * 4
    # The patient is still told, once, off the hot path.
    assert [(d.kind, d.channel) for d in await client.deliveries(booking.id)] == [("confirmed", "app")]


async def _stored(js, stream: str, subject: str) -> list[str]:
    """The subjects of every message `stream` holds on `subject`, read one by one (direct get)."""
    found: list[str] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True, direct=True)
        except nats.js.errors.NotFoundError:
            return found
        found.append(msg.subject)
        seq = msg.seq + 1
