"""Issue 19, changing a booking: RescheduleBooking holds the new places first and only then gives the
old ones back (or keeps everything the booking had); no patient holds two overlapping times; every
event says who caused it; the reason for the visit is a note staff may change, never logged.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booking_svc import leaving
from clinic.v1 import booking_pb2, frontdesk_pb2_grpc
from clinic.v1 import common_pb2 as c
from clinic.v1 import frontdesk_pb2 as f
from clinic_common import queues
from schedule_svc.domain import patient_busy
from schedule_svc.places import PlacesStore, Request, doctor_keys, hold_key, tag_of
from tests.harness import Client, future_date, patient, redis_client, uid, wait_for
from tests.integration.test_cli import clinic

R = c.RejectionReason
CONFIRMED = c.BOOKING_STATUS_CONFIRMED


async def confirmed(client: Client, day: str, doctor_id: str, start: str = "", who=None, **kw) -> c.Booking:
    b = await client.create(
        who or patient(), ["gen-consult"], appointment_date=day, doctor_id=doctor_id, start_time=start, **kw
    )
    done = await client.settled(b.id)
    assert done.status == CONFIRMED, done.status_message
    return done


async def reschedule(client: Client, booking_id: str, metadata=None, **kw) -> c.Booking:
    req = booking_pb2.RescheduleBookingRequest(booking_id=booking_id, **kw)
    return (
        await client.bookings.RescheduleBooking(req, metadata=metadata or client.auth(), timeout=10)
    ).booking


async def answered(client: Client, booking_id: str, moves: int = 1) -> c.Booking:
    """The booking once `moves` reschedules have their outcome (RESCHEDULED or RESCHEDULE_REFUSED)."""
    outcomes = (c.EVENT_TYPE_BOOKING_RESCHEDULED, c.EVENT_TYPE_RESCHEDULE_REFUSED)

    async def check():
        b = await client.get(booking_id)
        return b if sum(e.type in outcomes for e in b.history) >= moves else None

    return await wait_for(check, 20, f"the reschedule of {booking_id} to be answered")


def kinds(b: c.Booking) -> list[str]:
    return [c.EventType.Name(e.type).removeprefix("EVENT_TYPE_") for e in b.history]


async def tokens(redis, day: str, doctor_id: str) -> dict[int, str]:
    return {int(k): v.decode() for k, v in (await redis.hgetall(doctor_keys(day, doctor_id)[1])).items()}


async def slots(redis, day: str, doctor_id: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (await redis.hgetall(doctor_keys(day, doctor_id)[2])).items()}


def bad_fields(err: grpc.aio.AioRpcError) -> set[str]:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                request = error_details_pb2.BadRequest()
                if detail.Unpack(request):
                    return {v.field for v in request.field_violations}
    return set()


async def test_a_move_holds_the_new_places_then_releases_the_old_ones(client: Client, redis):
    doctor = await client.doctor(daily_capacity=5)
    other = await client.doctor(daily_capacity=5)
    day, new_day = future_date(), future_date()
    while new_day == day:
        new_day = future_date()
    b = await confirmed(client, day, doctor.id, "10:00", note="knee pain")
    assert b.note == "knee pain"
    desk = client.auth("desk-7", "staff")
    asked = await reschedule(
        client,
        b.id,
        desk,
        appointment_date=new_day,
        doctor_id=other.id,
        start_time="11:30",
        request_id=uid("r"),
    )
    assert (asked.appointment_date, asked.start_time) == (day, "10:00")  # still where it was
    moved = await answered(client, b.id)
    assert kinds(moved)[-1] == "BOOKING_RESCHEDULED", moved.status_message
    event = moved.history[-1]
    assert "→" in event.message and day in event.message and new_day in event.message
    assert (event.actor.sub, event.actor.role) == ("desk-7", "staff")
    assert (moved.appointment_date, moved.doctor_id, moved.start_time, moved.token) == (
        new_day,
        other.id,
        "11:30",
        1,
    )
    assert moved.status == CONFIRMED
    assert moved.discount == b.discount and moved.final_price == b.final_price  # the discount stays
    # Exactly one set of places: the new one, under the move's holder; the old one released.
    assert await tokens(redis, day, doctor.id) == {}
    assert await slots(redis, day, doctor.id) == {}
    assert await tokens(redis, new_day, other.id) == {1: f"{b.id}~1"}
    assert (await redis.hget(hold_key(day, b.id), "state")) == b"released"
    assert (await redis.hget(hold_key(new_day, f"{b.id}~1"), "state")) == b"held"
    listed = await client.bookings.ListBookings(
        booking_pb2.ListBookingsRequest(doctor_id=other.id), metadata=desk
    )
    assert [x.id for x in listed.bookings] == [b.id]
    # Cancelling it later gives back the places it holds now.
    await client.cancel(b.id)
    await wait_for(lambda: _released(redis, new_day, f"{b.id}~1"), what="the moved places released on cancel")
    assert await tokens(redis, new_day, other.id) == {}


async def _released(redis, day: str, holder: str) -> bool:
    return (await redis.hget(hold_key(day, holder), "state")) == b"released"


async def test_a_refused_move_keeps_everything_the_booking_had(client: Client, redis):
    doctor = await client.doctor(daily_capacity=5)
    day = future_date()
    b = await confirmed(client, day, doctor.id, "10:00")
    await confirmed(client, day, doctor.id, "12:00")
    await reschedule(client, b.id, start_time="12:00")
    kept = await answered(client, b.id)
    assert kinds(kept)[-1] == "RESCHEDULE_REFUSED"
    assert kept.history[-1].reason == R.Value("REJECTION_REASON_SLOT_UNAVAILABLE")
    assert "REJECTION_REASON_SLOT_UNAVAILABLE" in kept.history[-1].message
    assert (kept.appointment_date, kept.start_time, kept.token, kept.status) == (
        day,
        "10:00",
        b.token,
        CONFIRMED,
    )
    assert (await slots(redis, day, doctor.id))[b.id] == "600,615"
    assert (await redis.hget(hold_key(day, f"{b.id}~1"), "state")) == b"refused"
    # It can be moved again afterwards (one move at a time, each answered).
    await reschedule(client, b.id, start_time="13:00")
    again = await answered(client, b.id, moves=2)
    assert (kinds(again)[-1], again.start_time) == ("BOOKING_RESCHEDULED", "13:00")


async def test_a_move_within_a_full_day_keeps_its_token(client: Client, redis):
    doctor = await client.doctor(daily_capacity=1)
    day = future_date()
    b = await confirmed(client, day, doctor.id, "10:00")
    await reschedule(client, b.id, start_time="10:15", duration_minutes=30)
    moved = await answered(client, b.id)
    assert kinds(moved)[-1] == "BOOKING_RESCHEDULED", moved.status_message
    assert (moved.start_time, moved.duration_minutes, moved.token) == ("10:15", 30, 1)
    assert await tokens(redis, day, doctor.id) == {1: f"{b.id}~1"}
    assert await slots(redis, day, doctor.id) == {f"{b.id}~1": "615,645"}


async def test_the_same_request_id_moves_once(client: Client):
    doctor = await client.doctor(daily_capacity=5)
    day = future_date()
    b = await confirmed(client, day, doctor.id, "10:00")
    rid = uid("move")
    first, second = await asyncio.gather(
        reschedule(client, b.id, start_time="14:00", request_id=rid),
        reschedule(client, b.id, start_time="14:00", request_id=rid),
        return_exceptions=True,
    )
    # Two calls racing: one asks for the move, the other gets the same booking (or, having lost the
    # compare-and-set to it, finds the move in progress under that id: still no second move).
    assert not isinstance(first, Exception) or not isinstance(second, Exception)
    moved = await answered(client, b.id)
    again = await reschedule(client, b.id, start_time="14:00", request_id=rid)
    assert again.start_time == "14:00"
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await reschedule(client, b.id, start_time="15:00", request_id=rid)
    assert other.value.code() == grpc.StatusCode.ALREADY_EXISTS
    final = await client.get(b.id)
    assert kinds(final).count("BOOKING_RESCHEDULED") == 1 and moved.start_time == "14:00"


async def test_freed_places_go_to_the_waitlist_as_a_cancellations_would(client: Client, redis):
    doctor = await client.doctor(daily_capacity=1)
    day, new_day = future_date(), future_date()
    while new_day == day:
        new_day = future_date()
    b = await confirmed(client, day, doctor.id)
    waiting = await client.create(
        patient(), ["gen-consult"], appointment_date=day, doctor_id=doctor.id, waitlist=True
    )
    await wait_for(
        lambda: _status(client, waiting.id, c.BOOKING_STATUS_WAITLISTED), what="the second booking in line"
    )
    await reschedule(client, b.id, appointment_date=new_day)
    moved = await answered(client, b.id)
    assert kinds(moved)[-1] == "BOOKING_RESCHEDULED"

    async def offered():
        w = await client.get(waiting.id)
        return w if w.HasField("offer_expires_at") else None

    await wait_for(offered, what="the freed token offered to the waitlist")
    assert await tokens(redis, day, doctor.id) == {1: waiting.id}
    assert await tokens(redis, new_day, doctor.id) == {1: f"{b.id}~1"}


async def _status(client: Client, booking_id: str, status: int) -> bool:
    return (await client.get(booking_id)).status == status


async def test_twenty_reschedules_into_one_free_time_exactly_one_wins(client: Client, redis):
    doctor = await client.doctor(daily_capacity=30, day_start="08:00", day_end="18:00")
    day = future_date()
    starts = [f"{8 + i // 4:02d}:{(i % 4) * 15:02d}" for i in range(20)]  # 08:00 .. 12:45
    booked = await asyncio.gather(*(confirmed(client, day, doctor.id, s) for s in starts))
    await asyncio.gather(*(reschedule(client, b.id, start_time="16:00") for b in booked))
    outcomes = await asyncio.gather(*(answered(client, b.id) for b in booked))
    won = [b for b in outcomes if kinds(b)[-1] == "BOOKING_RESCHEDULED"]
    lost = [b for b in outcomes if kinds(b)[-1] == "RESCHEDULE_REFUSED"]
    assert (len(won), len(lost)) == (1, 19)
    assert won[0].start_time == "16:00"
    for before, after in zip(booked, outcomes, strict=True):
        if after.id != won[0].id:
            assert (after.start_time, after.token) == (before.start_time, before.token)  # kept its places
            assert after.history[-1].reason == R.Value("REJECTION_REASON_SLOT_UNAVAILABLE")
    held = await slots(redis, day, doctor.id)
    assert len(held) == 20 and held[f"{won[0].id}~1"] == "960,975"
    assert sorted(await tokens(redis, day, doctor.id)) == sorted(b.token for b in outcomes)


async def test_bad_input_names_the_field_and_changes_nothing(client: Client):
    doctor = await client.doctor(daily_capacity=5)
    day = future_date()
    b = await confirmed(client, day, doctor.id, "10:00")
    cases = [
        ({}, {"appointment_date"}),
        ({"appointment_date": "2020-01-01"}, {"appointment_date"}),
        ({"appointment_date": "tomorrow"}, {"appointment_date"}),
        ({"start_time": "25:99"}, {"start_time"}),
        ({"duration_minutes": 5}, {"duration_minutes"}),
        ({"doctor_id": "d-nobody"}, {"doctor_id"}),
        ({"start_time": "11:00", "request_id": "x" * 200}, {"request_id"}),
        ({"start_time": "10:00"}, {"appointment_date"}),  # already there
    ]
    for fields, named in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await reschedule(client, b.id, **fields)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
        assert bad_fields(err.value) == named, (fields, err.value.details())
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await reschedule(client, "", start_time="11:00")
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = await client.get(b.id)
    assert after.updated_at == b.updated_at and len(after.history) == len(b.history)


async def test_who_may_move_what(client: Client):
    doctor = await client.doctor(daily_capacity=5)
    day = future_date()
    own = patient()
    b = await confirmed(client, day, doctor.id, "10:00", who=own)
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await reschedule(client, b.id, client.auth("someone-else", "patient"), start_time="11:00")
    assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await reschedule(client, b.id, client.auth(own.id, "patient"), start_time="11:00")
    moved = await answered(client, b.id)
    assert (moved.history[-1].actor.sub, moved.history[-1].actor.role) == (own.id, "patient")
    await client.cancel(b.id)
    with pytest.raises(grpc.aio.AioRpcError) as cancelled:
        await reschedule(client, b.id, start_time="12:00")
    assert cancelled.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_patient_never_holds_two_overlapping_times(client: Client):
    one, two = await client.doctor(daily_capacity=5), await client.doctor(daily_capacity=5)
    day = future_date()
    who = patient()
    first = await confirmed(client, day, one.id, "10:00", who=who, duration_minutes=30)
    busy = await client.settled(
        (
            await client.create(
                who, ["gen-consult"], appointment_date=day, doctor_id=two.id, start_time="10:15"
            )
        ).id
    )
    assert busy.rejection_reason == R.Value("REJECTION_REASON_PATIENT_BUSY")
    later = await confirmed(client, day, two.id, "10:30", who=who)  # touching is not overlapping
    await reschedule(client, later.id, start_time="10:20")
    refused = await answered(client, later.id)
    assert refused.history[-1].reason == R.Value("REJECTION_REASON_PATIENT_BUSY")
    assert refused.start_time == "10:30"
    await reschedule(client, first.id, start_time="09:00")  # its own old interval does not count
    assert kinds(await answered(client, first.id))[-1] == "BOOKING_RESCHEDULED"


async def test_many_overlapping_bookings_of_one_patient_exactly_one_wins(client: Client):
    doctors = await asyncio.gather(*(client.doctor(daily_capacity=5) for _ in range(12)))
    day = future_date()
    who = patient()
    made = await asyncio.gather(
        *(
            client.create(who, ["gen-consult"], appointment_date=day, doctor_id=d.id, start_time="15:00")
            for d in doctors
        )
    )
    done = await asyncio.gather(*(client.settled(b.id) for b in made))
    assert sum(b.status == CONFIRMED for b in done) == 1
    assert {b.rejection_reason for b in done if b.status != CONFIRMED} == {
        R.Value("REJECTION_REASON_PATIENT_BUSY")
    }


async def test_a_crash_between_holding_the_new_places_and_releasing_the_old_ends_the_same(
    client: Client, redis
):
    """schedule_svc held the move's places and died before releasing the old ones: the redelivered
    move finds its hold (the same answer) and releases the old places. Simulated by holding the
    move's places first, exactly as the first delivery's reserve script would have."""
    doctor = await client.doctor(daily_capacity=5)
    day = future_date()
    b = await confirmed(client, day, doctor.id, "10:00")
    store = PlacesStore(redis)
    first = await store.reserve(
        Request(f"{b.id}~1", day, ["gen-consult"], doctor.id, 660, 675, b.patient.id),
        [40],
        (5, 540, 1020),
        replaces=b.id,
    )
    assert first.state == "held"
    # The moment between the two steps: the move took over the booking's token (same doctor-day)
    # and holds its new interval beside the old one.
    assert await tokens(redis, day, doctor.id) == {first.token: f"{b.id}~1"}
    assert set(await slots(redis, day, doctor.id)) == {b.id, f"{b.id}~1"}
    await reschedule(client, b.id, start_time="11:00")
    moved = await answered(client, b.id)
    assert kinds(moved)[-1] == "BOOKING_RESCHEDULED" and moved.token == first.token
    assert await tokens(redis, day, doctor.id) == {first.token: f"{b.id}~1"}
    assert await slots(redis, day, doctor.id) == {f"{b.id}~1": "660,675"}
    assert tag_of(day) in hold_key(day, b.id)


async def test_the_note_is_validated_changed_by_staff_and_never_logged(client: Client, system):
    doctor = await client.doctor(daily_capacity=5)
    day = future_date()
    secret = f"chest pain {uid('n')}"
    with pytest.raises(grpc.aio.AioRpcError) as long:
        await client.create(patient(), ["gen-consult"], appointment_date=day, note="x" * 501)
    assert long.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_fields(long.value) == {"note"}
    b = await confirmed(client, day, doctor.id, note=secret)
    req = booking_pb2.UpdateBookingNoteRequest(booking_id=b.id, note=secret + " and fever")
    with pytest.raises(grpc.aio.AioRpcError) as patient_call:
        await client.bookings.UpdateBookingNote(req, metadata=client.auth(b.patient.id, "patient"))
    assert patient_call.value.code() == grpc.StatusCode.PERMISSION_DENIED
    changed = (await client.bookings.UpdateBookingNote(req, metadata=client.auth("desk-2", "staff"))).booking
    assert changed.note == secret + " and fever"
    assert (changed.history[-1].type, changed.history[-1].actor.sub) == (c.EVENT_TYPE_NOTE_CHANGED, "desk-2")
    assert secret not in changed.history[-1].message
    with pytest.raises(grpc.aio.AioRpcError) as too_long:
        await client.bookings.UpdateBookingNote(
            booking_pb2.UpdateBookingNoteRequest(booking_id=b.id, note="y" * 501), metadata=client.auth()
        )
    assert bad_fields(too_long.value) == {"note"}
    assert (await client.get(b.id)).note == secret + " and fever"
    for service in ("booking_svc", "schedule_svc", "notification_svc", "gateway"):
        assert "chest pain" not in system.log_tail(service, 2_000_000), service


async def test_the_actor_is_the_verified_caller_never_one_forged_in_the_body(client: Client):
    """A request body carrying an Actor (as an unknown field, the way a client could smuggle one), and
    identity headers beside the token, change nothing: every event names the token's caller or a
    system actor."""
    who = patient()
    req = booking_pb2.CreateBookingRequest(
        patient=who, service_ids=["gen-consult"], appointment_date=future_date()
    )
    forged = c.Actor(sub="mallory", role="admin").SerializeToString()
    body = req.SerializeToString() + bytes([10 << 3 | 2, len(forged)]) + forged  # field 10: an Actor
    create = client.channel.unary_unary(
        "/clinic.v1.BookingService/CreateBooking",
        request_serializer=lambda raw: raw,
        response_deserializer=booking_pb2.CreateBookingResponse.FromString,
    )
    forged_headers = [("x-clinic-sub", "mallory"), ("x-clinic-role", "admin")]  # the edge drops these
    made = (await create(body, metadata=client.auth(who.id, "patient") + forged_headers, timeout=10)).booking
    done = await client.settled(made.id)
    actors = {(e.actor.sub, e.actor.role) for e in done.history}
    assert ("mallory", "admin") not in actors
    assert (who.id, "patient") in actors
    assert actors <= {(who.id, "patient"), ("notification_svc", "system")}
    assert done.history[0].actor.sub == who.id


async def test_a_checked_in_booking_is_not_moved_and_queue_changes_name_their_actor(client: Client):
    desk = frontdesk_pb2_grpc.FrontDeskServiceStub(client.channel)
    doctor = await client.doctor(service_ids=("blood-panel",), daily_capacity=5)
    b = await client.settled(
        (await client.create(patient(), ["blood-panel"], doctor_id=doctor.id)).id, notified=False
    )
    assert b.status == CONFIRMED
    watch = desk.WatchQueue(f.WatchQueueRequest(doctor_id=doctor.id), metadata=client.auth(), timeout=20)
    stream = aiter(watch)
    assert (await anext(stream)).WhichOneof("item") == "snapshot"
    await desk.CheckIn(f.CheckInRequest(booking_id=b.id), metadata=client.auth(b.patient.id, "patient"))
    await desk.CallNext(f.CallNextRequest(doctor_id=doctor.id), metadata=client.auth("desk-9", "staff"))
    changes = [(await anext(stream)).change for _ in range(2)]
    watch.cancel()
    assert [(ch.actor.sub, ch.actor.role) for ch in changes] == [
        (b.patient.id, "patient"),
        ("desk-9", "staff"),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await reschedule(client, b.id, appointment_date=future_date())
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "checked in" in err.value.details()


async def test_clinic_reschedule_waits_for_the_answer(client: Client, system):
    doctor = await client.doctor(daily_capacity=5)
    day = future_date()
    b = await confirmed(client, day, doctor.id, "10:00")
    await confirmed(client, day, doctor.id, "12:00")
    moved = await clinic(system, "reschedule", b.id, "--at", "11:00")
    assert moved.returncode == 0, moved.stderr
    assert "BOOKING_RESCHEDULED" in moved.stdout and "→" in moved.stdout and "(by operator)" in moved.stdout
    refused = await clinic(system, "reschedule", b.id, "--at", "12:00")
    assert refused.returncode == 1, refused.stderr
    assert "RESCHEDULE_REFUSED" in refused.stdout and "SLOT_UNAVAILABLE" in refused.stdout
    bad = await clinic(system, "reschedule", b.id, "--at", "noon")
    assert bad.returncode != 0 and "start_time" in bad.stderr


async def test_a_booking_cancelled_while_its_move_is_under_way_ends_holding_nothing(client: Client, redis):
    """Cancel right behind the reschedule: whichever reaches schedule_svc first, both sets go back
    (the move's holder is released, or closed so the move is refused) and nothing is left held."""
    doctor = await client.doctor(daily_capacity=20)
    day, new_day = future_date(), future_date()
    while new_day == day:
        new_day = future_date()
    booked = await asyncio.gather(
        *(confirmed(client, day, doctor.id, f"{9 + i // 4:02d}:{(i % 4) * 15:02d}") for i in range(8))
    )
    for b in booked:
        await reschedule(client, b.id, appointment_date=new_day)
        await client.cancel(b.id)

    async def nothing_held() -> bool:
        held = [
            *(await tokens(redis, day, doctor.id)).values(),
            *(await tokens(redis, new_day, doctor.id)).values(),
            *(await slots(redis, day, doctor.id)),
            *(await slots(redis, new_day, doctor.id)),
        ]
        return not held

    await wait_for(nothing_held, 20, "every place of the cancelled bookings back")
    for b in booked:
        final = await client.settled(b.id)
        assert final.status == c.BOOKING_STATUS_CANCELLED
        assert kinds(final).count("PLACES_RELEASED") == 1


SPANS = st.tuples(st.integers(540, 1000), st.integers(15, 120)).map(lambda t: (t[0], t[0] + t[1]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spans=st.lists(SPANS, min_size=1, max_size=6), moves=st.lists(st.integers(0, 5), max_size=3))
def test_the_patient_busy_script_agrees_with_the_rule(servers, spans, moves):
    """The reserve script and schedule_svc.domain.patient_busy answer alike: each interval of one
    patient (each with a doctor of its own) is held unless it overlaps one held by another booking;
    a holder "<booking>~<n>" (a move) never counts against its own booking."""
    asyncio.run(_busy_case(servers, spans, moves))


async def _busy_case(servers, spans, moves) -> None:
    r = await redis_client(servers)
    try:
        store, day, pid = PlacesStore(r), future_date(), uid("p")
        held: dict[str, tuple[int, int]] = {}
        base = uid("b")  # holds are recorded per holder: each example its own
        holders = [f"{base}{i}" for i in range(len(spans))] + [f"{base}{m % len(spans)}~1" for m in moves]
        intervals = spans + [spans[m % len(spans)] for m in moves]
        for i, (holder_id, span) in enumerate(zip(holders, intervals, strict=True)):
            expected_busy = patient_busy(holder_id, span, held)
            request = Request(holder_id, day, [], f"{base}-d{i}", span[0], span[1], pid)
            outcome = await store.reserve(request, [], (5, 0, 1440))
            assert (outcome.state, outcome.reason) == (("refused", "busy") if expected_busy else ("held", ""))
            if not expected_busy:
                held[holder_id] = span
        stored = await r.hgetall(f"{tag_of(day)}:patient:{pid}")
        assert {k.decode(): tuple(map(int, v.decode().split(","))) for k, v in stored.items()} == held
    finally:
        await r.aclose()


async def token_booking(client: Client, doctor_id: str) -> c.Booking:
    """A CONFIRMED blood-panel booking for today with `doctor_id` (a token, no time)."""
    made = await client.create(patient(), ["blood-panel"], doctor_id=doctor_id)
    return await client.settled(made.id, notified=False)


async def check_in_as_patient(desk, client: Client, b: c.Booking) -> f.Visit:
    req = f.CheckInRequest(booking_id=b.id)
    return (await desk.CheckIn(req, metadata=client.auth(b.patient.id, "patient"), timeout=10)).visit


async def test_a_check_in_racing_a_reschedule_never_lands_in_the_queue_the_booking_left(client: Client):
    """CheckIn and RescheduleBooking of one booking at once, many times, one of the two late by
    0-14 ms by turns: the desk reads the booking at its old doctor while the move is in flight, or the
    move looks for a visit a moment before it is stored. Never a visit in a queue the booking left:
    the patient checked in first and the booking stays, or the move went first and the check-in was
    refused or landed in the new doctor's queue."""
    desk = frontdesk_pb2_grpc.FrontDeskServiceStub(client.channel)
    doctor = await client.doctor(service_ids=("blood-panel",), daily_capacity=40)
    other = await client.doctor(service_ids=("blood-panel",), daily_capacity=40)
    rounds = 16
    made = [await token_booking(client, doctor.id) for _ in range(rounds)]
    assert all(b.status == CONFIRMED for b in made)

    async def check_in(b: c.Booking, delay_ms: int) -> f.Visit | None:
        await asyncio.sleep(delay_ms / 1000)
        try:
            return await check_in_as_patient(desk, client, b)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
            return None

    async def move(b: c.Booking, i: int, delay_ms: int) -> bool:
        await asyncio.sleep(delay_ms / 1000)
        where = {"doctor_id": other.id} if i % 4 < 2 else {"appointment_date": future_date()}
        try:
            await reschedule(client, b.id, **where)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
            assert "checked in" in err.details()
            return False
        return True

    outcomes = []
    for i, b in enumerate(made):
        lag = (i // 2) * 2  # ms: 0, 0, 2, 2, 4, 4 … 14 ms, the check-in late or the move late by turns
        visit, asked = await asyncio.gather(check_in(b, lag if i % 2 else 0), move(b, i, 0 if i % 2 else lag))
        if asked:
            await answered(client, b.id)
        outcomes.append((b, visit, asked))
    day = made[0].appointment_date
    req = f.GetQueueRequest(doctor_id=doctor.id, date=day)
    queue = await desk.GetQueue(req, metadata=client.auth(), timeout=10)
    in_old_queue = {v.booking_id for v in queue.visits}
    seen = {"checked in, not moved": 0, "moved, then checked in there": 0, "moved, check-in refused": 0}
    for b, visit, asked in outcomes:
        now = await client.get(b.id)
        moved = (now.doctor_id, now.appointment_date) != (b.doctor_id, b.appointment_date)
        assert moved == asked, f"{b.id}: the reschedule was {'asked' if asked else 'refused'}, moved {moved}"
        assert not (moved and b.id in in_old_queue), f"{b.id} moved away but its visit is in the old queue"
        if visit is not None:
            assert (visit.doctor_id, visit.date) == (now.doctor_id, now.appointment_date), (
                f"{b.id}: visit in the queue of {visit.doctor_id} {visit.date}, booking at "
                f"{now.doctor_id} {now.appointment_date}"
            )
        assert (b.id in in_old_queue) == (visit is not None and not moved)
        if not moved:
            assert visit is not None, f"{b.id}: neither the move nor the check-in happened"
            seen["checked in, not moved"] += 1
        else:
            seen["moved, then checked in there" if visit else "moved, check-in refused"] += 1
    print("check-in vs reschedule:", seen)
    assert sum(seen.values()) == rounds


async def test_a_refused_move_lets_the_patient_check_in_and_a_move_away_closes_the_old_queue(
    client: Client, redis
):
    """The leaving mark's life: gone after a refusal (the booking stays, the patient checks in), kept
    for a day and a half in the queue a booking left (a check-in that read it before cannot land)."""
    desk = frontdesk_pb2_grpc.FrontDeskServiceStub(client.channel)
    doctor = await client.doctor(service_ids=("blood-panel",), daily_capacity=5)
    full = await client.doctor(service_ids=("blood-panel",), daily_capacity=1)
    roomy = await client.doctor(service_ids=("blood-panel",), daily_capacity=5)
    await token_booking(client, full.id)
    stays, leaves = [await token_booking(client, doctor.id) for _ in range(2)]
    tag = queues.queue_tag(doctor.id, stays.appointment_date)

    await reschedule(client, stays.id, doctor_id=full.id)
    refused = await answered(client, stays.id)
    assert kinds(refused)[-1] == "RESCHEDULE_REFUSED" and refused.doctor_id == doctor.id
    assert not await redis.exists(queues.leaving_key(tag, stays.id))
    await check_in_as_patient(desk, client, stays)

    await reschedule(client, leaves.id, doctor_id=roomy.id)
    assert (await answered(client, leaves.id)).doctor_id == roomy.id
    ttl_ms = await redis.pttl(queues.leaving_key(tag, leaves.id))
    assert leaving.GONE_MS - 60_000 < ttl_ms <= leaving.GONE_MS
    checked = await check_in_as_patient(desk, client, leaves)
    assert checked.doctor_id == roomy.id  # where it is now; the old queue stays closed to it
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await reschedule(client, stays.id, doctor_id=roomy.id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "checked in" in err.value.details()
