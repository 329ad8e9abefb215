"""Exactly-once effects: request ids, redelivered and duplicated saga messages."""

from __future__ import annotations

import asyncio

import grpc
import nats
import pytest

from clinic.v1 import common_pb2 as c
from clinic.v1 import saga_pb2
from clinic_common import subjects
from discount_svc.store import used_key
from tests.harness import birthday_patient, future_date, patient, today_ist, uid, wait_for


async def test_same_request_id_five_times_concurrently_makes_one_booking(client):
    who = patient()
    request_id = uid("req")
    day = future_date()
    results = await asyncio.gather(
        *(client.create(who, ["gen-consult"], appointment_date=day, request_id=request_id) for _ in range(5))
    )
    assert len({b.id for b in results}) == 1
    await client.settled(results[0].id)
    from clinic.v1 import booking_pb2

    listed = await client.bookings.ListBookings(
        booking_pb2.ListBookingsRequest(patient_id=who.id), metadata=client.auth()
    )
    assert [b.id for b in listed.bookings] == [results[0].id]
    again = await client.create(who, ["gen-consult"], appointment_date=day, request_id=request_id)
    assert again.id == results[0].id
    assert again.status == c.BOOKING_STATUS_CONFIRMED  # the stored booking, no second saga


async def test_same_request_id_with_a_different_request_is_already_exists(client):
    request_id = uid("req")
    who = patient()
    await client.create(who, ["gen-consult"], appointment_date=future_date(), request_id=request_id)
    try:
        await client.create(who, ["blood-panel"], appointment_date=future_date(), request_id=request_id)
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    else:
        raise AssertionError("a reused request_id with another request must be refused")


async def test_duplicated_saga_messages_have_one_effect(client, redis, servers):
    """Redeliver every saga message of a finished booking (new msg ids: JetStream can't dedupe)."""
    day = today_ist().isoformat()
    await redis.set(used_key(day), 0)
    booking = await client.create(birthday_patient(), ["gen-consult"], appointment_date=future_date())
    before = await client.settled(booking.id)
    assert (await client.quota()).used == 1

    nc = await nats.connect(servers.nats_url)
    js = nc.jetstream()
    try:
        replayed = 0
        for prefix in (
            subjects.PLACES_REQUESTED,
            subjects.PLACES_RESERVED,
            subjects.DISCOUNT_DECIDED,
        ):
            subject = subjects.saga_subject(prefix, booking.id)
            original = await js.get_msg(subjects.SAGA_STREAM, subject=subject)
            for copy in range(2):
                await js.publish(subject, original.data, headers={"Nats-Msg-Id": uid(f"dup{copy}")})
                replayed += 1
        # Redeliver the final event to the notifier as well (it reads BOOKING_EVENTS itself).
        confirmed = next(e for e in before.history if e.type == c.EVENT_TYPE_BOOKING_CONFIRMED)
        await js.publish(
            subjects.event_subject(booking.id),
            confirmed.SerializeToString(),
            headers={"Nats-Msg-Id": uid("dupev")},
        )
        assert replayed == 6

        async def consumers_drained():
            infos = [
                await js.consumer_info(subjects.SAGA_STREAM, subjects.SCHEDULE_CONSUMER),
                await js.consumer_info(subjects.SAGA_STREAM, subjects.DISCOUNT_CONSUMER),
                await js.consumer_info(subjects.SAGA_STREAM, subjects.BOOKING_CONSUMER),
                await js.consumer_info(subjects.EVENTS_STREAM, subjects.NOTIFICATION_CONSUMER),
                await js.consumer_info(subjects.NOTIFY_STREAM, subjects.SEND_CONSUMER),
            ]
            return all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos)

        await wait_for(consumers_drained, what="consumers to process the duplicates")
    finally:
        await nc.close()

    after = await client.get(booking.id)
    assert [(e.sequence, e.type) for e in after.history] == [(e.sequence, e.type) for e in before.history]
    assert (await client.quota()).used == 1
    notifications = await redis.lrange(f"notifications:patient:{booking.patient.id}", 0, -1)
    assert len(notifications) == 1
    assert [(d.kind, d.channel) for d in await client.deliveries(booking.id)] == [("confirmed", "app")]


def _reservation(booking_id: str, *, reserved: bool, places_of: str = "") -> bytes:
    request = saga_pb2.DiscountRequested(
        booking_id=booking_id, patient_id="p", date_of_birth="1980-01-01", clinic_date=today_ist().isoformat()
    )
    places = saga_pb2.PlacesDecided(booking_id=places_of or booking_id, reserved=reserved, discount=request)
    return places.SerializeToString()


POISONS = {
    "undecodable request": (subjects.DISCOUNT_REQUESTED, lambda _: b"\xff\xffnot a protobuf"),
    "undecodable reservation": (subjects.PLACES_RESERVED, lambda _: b"\xff\xffnot a protobuf"),
    # A discount must never be decided for a booking that holds no places.
    "reservation of no places": (subjects.PLACES_RESERVED, lambda i: _reservation(i, reserved=False)),
    "reservation of another booking": (
        subjects.PLACES_RESERVED,
        lambda i: _reservation(i, reserved=True, places_of=i + "x"),
    ),
}


@pytest.mark.parametrize("kind", list(POISONS))
async def test_a_poison_message_is_dead_lettered_and_the_consumer_keeps_working(client, servers, kind):
    prefix, make_payload = POISONS[kind]
    nc = await nats.connect(servers.nats_url)
    js = nc.jetstream()
    try:
        poison_id = uid("poison")
        payload = make_payload(poison_id)
        await js.publish(
            subjects.saga_subject(prefix, poison_id), payload, headers={"Nats-Msg-Id": poison_id}
        )

        async def dead_lettered():
            try:
                msg = await js.get_msg(
                    subjects.DLQ_STREAM,
                    subject=subjects.dlq_subject(subjects.SAGA_STREAM, subjects.DISCOUNT_CONSUMER),
                )
            except nats.js.errors.NotFoundError:
                return None
            letter = saga_pb2.DeadLetter.FromString(msg.data)
            return letter if letter.subject.endswith(poison_id) else None

        letter = await wait_for(dead_lettered, what="the poison message in DEAD_LETTERS")
        assert letter.reason.startswith("poison")
        assert letter.payload == payload
    finally:
        await nc.close()
    booking = await client.create(patient(), ["gen-consult"], appointment_date=future_date())
    assert (await client.settled(booking.id)).status == c.BOOKING_STATUS_CONFIRMED
