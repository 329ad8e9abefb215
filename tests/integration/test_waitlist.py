"""Issue 11, the waitlist: a full day queues bookings that asked to wait, a freed place is offered to
the first in line (held for it until the offer expires), AcceptOffer goes on with the saga, an expired
offer passes the place on. The races count their winners: one place, one booking, whatever happens.

The offer expiry tests run on a system of their own with WAITLIST_OFFER_SECONDS=2 (the session
system keeps the default 900 s, so its offers never run out under a test).
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import grpc
import pytest

from clinic.v1 import booking_pb2, doctor_pb2, notification_pb2
from clinic.v1 import common_pb2 as c
from schedule_svc.places import PlacesStore, Request, doctor_keys
from tests.conftest import TEST_QUOTA
from tests.harness import Client, Servers, System, future_date, patient, redis_client, uid, wait_for
from tests.integration.test_cli import clinic

R = c.RejectionReason
WAITLISTED = c.BOOKING_STATUS_WAITLISTED
SHORT_OFFER_S = 2


async def book(client: Client, day: str, doctor_id: str, who=None, **kw) -> c.Booking:
    return await client.create(
        who or patient(), ["gen-consult"], appointment_date=day, doctor_id=doctor_id, **kw
    )


def waitlist_date() -> str:
    """A date the other test modules never pick (they take 1-360 days ahead), so the REJECTED
    bookings made here never show in their date-wide listings; tests here keep apart by doctor."""
    return future_date(361 + random.randrange(6))


async def full_day(client: Client, capacity: int = 1) -> tuple[str, str, list[c.Booking]]:
    """A new doctor whose day is fully CONFIRMED."""
    doctor = await client.doctor(daily_capacity=capacity)
    day = waitlist_date()
    held = [await client.settled((await book(client, day, doctor.id)).id) for _ in range(capacity)]
    assert {b.status for b in held} == {c.BOOKING_STATUS_CONFIRMED}
    return doctor.id, day, held


async def in_line(client: Client, booking_id: str) -> c.Booking:
    async def check():
        b = await client.get(booking_id)
        return b if b.status == WAITLISTED else None

    return await wait_for(check, what=f"{booking_id} WAITLISTED")


async def offered(client: Client, booking_id: str, timeout_s: float = 15.0) -> c.Booking:
    async def check():
        b = await client.get(booking_id)
        return b if b.status == WAITLISTED and b.HasField("offer_expires_at") else None

    return await wait_for(check, timeout_s, f"an offer for {booking_id}")


async def queue(client: Client, day: str, doctor_id: str, n: int) -> list[c.Booking]:
    """n bookings that wait in line, one after the other (so their positions are 1..n)."""
    return [await in_line(client, (await book(client, day, doctor_id, waitlist=True)).id) for _ in range(n)]


def kinds(b: c.Booking) -> list[str]:
    return [c.EventType.Name(e.type).removeprefix("EVENT_TYPE_") for e in b.history]


async def reachable(client: Client) -> None:
    """After a restart, until the gateway reaches schedule_svc and booking_svc, and booking_svc
    reaches schedule_svc, again (channels that saw a service go away reconnect with a backoff)."""
    # An unknown doctor is INVALID_ARGUMENT once booking_svc can ask schedule_svc (nothing stored).
    unknown = booking_pb2.CreateBookingRequest(
        patient=patient(), service_ids=["gen-consult"], doctor_id="d-none"
    )

    async def check() -> bool:
        try:
            await client.doctors.ListDoctors(
                doctor_pb2.ListDoctorsRequest(), metadata=client.auth(), timeout=2
            )
            await client.bookings.CreateBooking(unknown, metadata=client.auth(), timeout=2)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return True
            if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
        return False

    await wait_for(check, 30, "the gateway and booking_svc to reach the services again")


async def holders(redis, day: str, doctor_id: str) -> dict[int, str]:
    _, tokens_key, _ = doctor_keys(day, doctor_id)
    return {int(k): v.decode() for k, v in (await redis.hgetall(tokens_key)).items()}


async def test_a_full_day_puts_bookings_that_wait_in_line_with_their_positions(client: Client, redis):
    doctor_id, day, _ = await full_day(client, capacity=2)
    waiting = await queue(client, day, doctor_id, 3)
    assert [b.waitlist_position for b in waiting] == [1, 2, 3]
    for b in waiting:
        assert b.status_message == f"No place free: waiting in line at position {b.waitlist_position}"
        assert kinds(b) == ["BOOKING_CREATED", "WAITLISTED"]
        assert b.discount.outcome == c.DISCOUNT_OUTCOME_UNSPECIFIED and b.token == 0  # no quota, no token
        assert await redis.zscore("bookings:pending", b.id) is None  # the booking timeout leaves it be
    refused = await client.settled((await book(client, day, doctor_id)).id)  # did not ask to wait
    assert refused.rejection_reason == R.Value("REJECTION_REASON_CAPACITY_UNAVAILABLE")
    view = await client.doctor_day(doctor_id, day)
    assert (view.booked, view.remaining, view.waitlisted) == (2, 0, 3)
    listed = await client.bookings.ListBookings(
        booking_pb2.ListBookingsRequest(doctor_id=doctor_id, status=WAITLISTED),
        metadata=client.auth("desk-1", "staff"),
    )
    assert {b.id for b in listed.bookings} == {b.id for b in waiting}


async def test_a_taken_time_waits_too_but_a_time_outside_the_doctors_hours_does_not(client: Client):
    doctor = await client.doctor(daily_capacity=10, day_start="09:00", day_end="12:00")
    day = waitlist_date()
    first = await client.settled((await book(client, day, doctor.id, start_time="10:00")).id)
    assert first.status == c.BOOKING_STATUS_CONFIRMED
    overlapping = await in_line(
        client, (await book(client, day, doctor.id, start_time="10:00", waitlist=True)).id
    )
    assert overlapping.waitlist_position == 1
    late = await client.settled((await book(client, day, doctor.id, start_time="11:50", waitlist=True)).id)
    assert late.rejection_reason == R.Value("REJECTION_REASON_SLOT_UNAVAILABLE")
    await client.cancel(first.id)
    assert (await offered(client, overlapping.id)).offer_expires_at.seconds > 0


async def test_a_cancellation_offers_the_place_to_the_first_in_line_who_accepts_and_is_confirmed(
    client: Client, redis
):
    doctor_id, day, (taken,) = await full_day(client)
    first, second = await queue(client, day, doctor_id, 2)
    watch = client.notifications.WatchPatient(
        notification_pb2.WatchPatientRequest(patient_id=first.patient.id), metadata=client.auth()
    )
    await watch.initial_metadata()
    before = datetime.now(UTC)
    await client.cancel(taken.id, "plans changed")
    offer = await offered(client, first.id)
    expires = offer.offer_expires_at.ToDatetime(tzinfo=UTC)
    assert 895 <= (expires - before).total_seconds() <= 915  # WAITLIST_OFFER_SECONDS defaults to 900
    assert kinds(offer)[:3] == ["BOOKING_CREATED", "WAITLISTED", "WAITLIST_OFFERED"]
    assert offer.status_message.startswith("A place is free for you (token 1)")
    assert not (await client.get(second.id)).HasField("offer_expires_at")  # one place, one offer
    assert await holders(redis, day, doctor_id) == {1: first.id}  # held for the offered booking
    # The patient hears of it: on WatchPatient, and in their notification records, once.
    seen = await asyncio.wait_for(_next_of(watch, c.EVENT_TYPE_WAITLIST_OFFERED), 10)
    assert seen.booking_id == first.id
    watch.cancel()
    await wait_for(lambda: _notified(client, first.id), what="offer notification recorded")
    records = await redis.lrange(f"notifications:patient:{first.patient.id}", 0, -1)
    assert [r.decode() for r in records] == [f"{first.id}: {offer.status_message}"]

    owner = client.auth(first.patient.id, "patient")
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await client.accept_offer(first.id, client.auth("someone-else", "patient"))
    assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as no_offer:
        await client.accept_offer(second.id)
    assert no_offer.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    accepted = await client.accept_offer(first.id, owner)
    assert accepted.status == c.BOOKING_STATUS_PENDING
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await client.accept_offer(first.id, owner)
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    done = await client.settled(first.id)
    assert (done.status, done.token) == (c.BOOKING_STATUS_CONFIRMED, 1)
    assert kinds(done)[2:5] == ["WAITLIST_OFFERED", "OFFER_ACCEPTED", "PLACES_RESERVED"]
    view = await client.doctor_day(doctor_id, day)
    assert (view.booked, view.remaining, view.waitlisted) == (1, 0, 1)
    assert await holders(redis, day, doctor_id) == {1: first.id}


async def _next_of(stream, kind: int) -> c.BookingEvent:
    async for item in stream:
        if item.event.type == kind:
            return item.event
    raise AssertionError("stream ended")


async def _notified(client: Client, booking_id: str) -> bool:
    return any(d.kind == "offered" for d in await client.deliveries(booking_id))


async def test_cancel_leaves_the_waitlist_and_an_offered_place_moves_on_to_the_next(client: Client, redis):
    doctor_id, day, (taken,) = await full_day(client)
    first, second, third = await queue(client, day, doctor_id, 3)
    gone = await client.cancel(second.id)
    assert gone.status == c.BOOKING_STATUS_CANCELLED
    await wait_for(lambda: _waitlisted(client, doctor_id, day, 2), what="the line shrinks to 2")
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await client.cancel(second.id)
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await client.cancel(taken.id)
    await offered(client, first.id)
    await client.cancel(first.id)  # gives the offered place back: it goes to the next still in line
    await offered(client, third.id)
    released = await client.settled(first.id)
    assert "PLACES_RELEASED" in kinds(released)
    assert not (await client.get(second.id)).HasField("offer_expires_at")
    done = await client.accept_offer(third.id)
    assert (await client.settled(done.id)).status == c.BOOKING_STATUS_CONFIRMED
    assert await holders(redis, day, doctor_id) == {1: third.id}
    assert (await client.doctor_day(doctor_id, day)).waitlisted == 0


async def _waitlisted(client: Client, doctor_id: str, day: str, n: int) -> bool:
    return (await client.doctor_day(doctor_id, day)).waitlisted == n


async def test_a_race_of_accepts_and_cancels_never_gives_one_place_to_two_bookings(client: Client, redis):
    """Every round: the offered booking is hit by 6 AcceptOffer and 2 CancelBooking at once (one that
    still ends CONFIRMED is then cancelled, freeing the place for the next round). Count the winners:
    one AcceptOffer at most per offer, never two holders of the place, and at a quiet moment the
    holder is the booking that says it holds it."""
    doctor_id, day, (taken,) = await full_day(client)
    line = await queue(client, day, doctor_id, 5)
    await client.cancel(taken.id)
    for _ in range(3):
        now_offered = await wait_for(lambda line=line: _the_offered(client, line), what="an offered booking")
        others = [b.id for b in line if b.id != now_offered.id]
        calls = [client.accept_offer(now_offered.id) for _ in range(6)]
        calls += [client.cancel(now_offered.id, "race") for _ in range(2)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        accepts = [r for r in results[:6] if not isinstance(r, Exception)]
        assert len(accepts) <= 1, accepts
        assert all(
            r.code() == grpc.StatusCode.FAILED_PRECONDITION for r in results if isinstance(r, Exception)
        )
        final = await client.settled(now_offered.id)
        assert final.status in (c.BOOKING_STATUS_CANCELLED, c.BOOKING_STATUS_CONFIRMED)
        if final.status == c.BOOKING_STATUS_CONFIRMED:
            await client.cancel(final.id)  # free it again for the next round
            await client.settled(final.id)
        line = [b for b in line if b.id in others]

    async def agreed() -> bool:  # never two holders; at a quiet moment, the holder is the booking
        now = [await client.get(b.id) for b in line]
        confirmed = [b.id for b in now if b.status == c.BOOKING_STATUS_CONFIRMED]
        offered_now = [b.id for b in now if b.status == WAITLISTED and b.HasField("offer_expires_at")]
        holder = await holders(redis, day, doctor_id)
        assert len(confirmed) + len(offered_now) <= 1 and len(holder) <= 1, (confirmed, offered_now, holder)
        return list(holder.values()) == confirmed + offered_now

    await wait_for(agreed, what="the place and the bookings to agree")


async def _the_offered(client: Client, line: list[c.Booking]) -> c.Booking | None:
    for b in line:
        now = await client.get(b.id)
        if now.status == WAITLISTED and now.HasField("offer_expires_at"):
            return now
    return None


# -- offers that run out: a system of their own with WAITLIST_OFFER_SECONDS=2 -----------------------


@pytest.fixture(scope="module")
def short_servers(tmp_path_factory):
    servers = Servers(tmp_path_factory.mktemp("waitlist")).start()
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def short_system(short_servers):
    system = System(
        short_servers,
        env={"DAILY_DISCOUNT_QUOTA": str(TEST_QUOTA), "WAITLIST_OFFER_SECONDS": str(SHORT_OFFER_S)},
    ).start()
    yield system
    system.stop()


@pytest.fixture
async def short(short_system):
    client = Client(short_system.gateway_addr)
    yield client
    await client.close()


async def test_an_offer_that_expires_rejects_offer_expired_and_passes_the_place_on(
    short: Client, short_servers, short_system: System
):
    doctor_id, day, (taken,) = await full_day(short)
    first, second, third = await queue(short, day, doctor_id, 3)
    await short.cancel(taken.id)
    await offered(short, first.id)
    lapsed = await short.settled(first.id, timeout_s=15)
    assert (lapsed.status, lapsed.rejection_reason) == (
        c.BOOKING_STATUS_REJECTED,
        R.Value("REJECTION_REASON_OFFER_EXPIRED"),
    )
    assert kinds(lapsed)[-1] == "BOOKING_REJECTED"
    # The next in line: AcceptOffer after the offer's time is refused and ends it the same way. With
    # schedule_svc (and its sweeper) stopped, booking_svc alone must see that the offer ran out.
    late = await offered(short, second.id)
    short_system.stop(("schedule_svc",))
    wait = late.offer_expires_at.ToDatetime(tzinfo=UTC) - datetime.now(UTC)
    await asyncio.sleep(max(wait.total_seconds(), 0) + 0.05)
    with pytest.raises(grpc.aio.AioRpcError) as expired:
        await short.accept_offer(second.id)
    assert expired.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await asyncio.to_thread(short_system.start, ("schedule_svc",))
    # The restarted sweeper passes the place to the third at once, and its offer runs for only
    # SHORT_OFFER_S: take it first (GetBooking and AcceptOffer need booking_svc alone), and wait
    # for the channels to schedule_svc to reconnect (seconds, with a backoff) after.
    await offered(short, third.id)
    accepted = await short.accept_offer(third.id)
    await reachable(short)
    refused = await short.settled(second.id)
    assert refused.rejection_reason == R.Value("REJECTION_REASON_OFFER_EXPIRED")
    assert (await short.settled(accepted.id)).status == c.BOOKING_STATUS_CONFIRMED
    redis = await redis_client(short_servers)
    try:
        assert await holders(redis, day, doctor_id) == {1: third.id}
    finally:
        await redis.aclose()


async def test_a_place_nobody_takes_walks_the_whole_line_one_full_offer_each(short: Client):
    """Issue 24's fault run: "waitlist not quiet: 1 offers out" 60 s after the faults, with about 40
    bookings in line. A place whose offer runs out goes to the next in line, whose offer runs its
    full time too, so a place nobody takes walks the whole line: every booking offered once, in
    order, for at least WAITLIST_OFFER_SECONDS each, and none left on offer at the end. The time
    it takes grows with the line (40 in line at 3 s each is over two minutes): the chaos check
    had to wait for the line to move, not for a fixed 60 s."""
    doctor_id, day, (taken,) = await full_day(short)
    line = await queue(short, day, doctor_id, 5)
    started = time.monotonic()
    await short.cancel(taken.id)
    ended = [await short.settled(b.id, timeout_s=30) for b in line]
    took = time.monotonic() - started
    assert {(b.status, b.rejection_reason) for b in ended} == {
        (c.BOOKING_STATUS_REJECTED, R.Value("REJECTION_REASON_OFFER_EXPIRED"))
    }
    offered_at = []
    for b in ended:
        offer = next(e for e in b.history if e.type == c.EVENT_TYPE_WAITLIST_OFFERED)
        end = next(e for e in b.history if e.type == c.EVENT_TYPE_BOOKING_REJECTED)
        assert b.HasField("offer_expires_at"), b
        early_s = (b.offer_expires_at.ToNanoseconds() - end.occurred_at.ToNanoseconds()) / 1e9
        assert early_s <= 0.05, (b.id, early_s)  # each offer ran to its end before the place moved on
        offered_at.append(offer.occurred_at.ToNanoseconds())
    assert offered_at == sorted(offered_at)  # in line order
    assert took >= len(line) * SHORT_OFFER_S, took


async def test_accepts_racing_the_expiry_never_give_one_place_to_two_bookings(short: Client, short_servers):
    """AcceptOffer fired around the moment the offer runs out, many times: either one accept wins
    (CONFIRMED) or the expiry does (OFFER_EXPIRED, the place offered to the next) — never both."""
    doctor_id, day, (taken,) = await full_day(short)
    line = await queue(short, day, doctor_id, 4)
    await short.cancel(taken.id)
    redis = await redis_client(short_servers)
    outcomes = []
    try:
        for b in line[:3]:
            offer = await offered(short, b.id)
            wait = offer.offer_expires_at.ToDatetime(tzinfo=UTC) - datetime.now(UTC)
            await asyncio.sleep(max(wait.total_seconds() - 0.1, 0))
            results = []
            for _ in range(4):  # bursts from 0.1 s before the expiry to 0.3 s after it
                results += await asyncio.gather(
                    *(short.accept_offer(b.id) for _ in range(4)), return_exceptions=True
                )
                await asyncio.sleep(0.1)
            winners = [r for r in results if not isinstance(r, Exception)]
            assert len(winners) <= 1
            final = await short.settled(b.id)
            outcomes.append(c.BookingStatus.Name(final.status))
            if winners:
                assert final.status in (c.BOOKING_STATUS_CONFIRMED, c.BOOKING_STATUS_REJECTED)
            else:
                assert final.rejection_reason == R.Value("REJECTION_REASON_OFFER_EXPIRED")
            if final.status == c.BOOKING_STATUS_CONFIRMED:
                assert await holders(redis, day, doctor_id) == {1: b.id}
                await short.cancel(b.id)
                await short.settled(b.id)
            holder = await holders(redis, day, doctor_id)
            assert len(holder) <= 1 and b.id not in holder.values()
    finally:
        await redis.aclose()
    assert outcomes  # what happened each round is in the assertion message on failure


async def test_the_offer_timer_survives_a_restart_of_every_process(short: Client, short_system: System):
    doctor_id, day, (taken,) = await full_day(short)
    first, second = await queue(short, day, doctor_id, 2)
    await short.cancel(taken.id)
    await offered(short, first.id)
    short_system.stop()  # every process; the offer runs out while nothing is running
    started = time.monotonic()
    await asyncio.sleep(SHORT_OFFER_S + 0.5)
    await asyncio.to_thread(short_system.start)
    await reachable(short)
    lapsed = await short.settled(first.id, timeout_s=30)
    assert lapsed.rejection_reason == R.Value("REJECTION_REASON_OFFER_EXPIRED")
    await offered(short, second.id)
    assert time.monotonic() - started < 60


async def test_patients_accept_only_their_own_offer_and_unknown_bookings_are_not_found(client: Client):
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await client.accept_offer(uid("nope"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    confirmed = await client.settled((await client.create(patient(), ["gen-consult"])).id)
    with pytest.raises(grpc.aio.AioRpcError) as not_waiting:
        await client.accept_offer(confirmed.id, client.auth(confirmed.patient.id, "patient"))
    assert not_waiting.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_an_offer_made_by_a_schedule_svc_that_died_before_publishing_it_still_arrives(
    short: Client, short_servers
):
    """The script that frees a place records the offer to announce; the sweeper publishes what a
    crash left unpublished. Here the test runs the release script itself and publishes nothing."""
    doctor_id, day, (taken,) = await full_day(short)
    (first,) = await queue(short, day, doctor_id, 1)
    redis = await redis_client(short_servers)
    try:
        request = Request(taken.id, day, ["gen-consult"], doctor_id)
        now_ms = int(time.time() * 1000)
        state, offered_to = await PlacesStore(redis).release_offering(request, now_ms, 60_000)
        assert (state, offered_to) == ("released", first.id)
        offer = await offered(short, first.id)
        assert offer.offer_expires_at.ToMilliseconds() == now_ms + 60_000
    finally:
        await redis.aclose()


async def test_clinic_offers_accept_takes_the_offer_and_follows_the_saga_to_confirmed(client: Client, system):
    doctor_id, day, (taken,) = await full_day(client)
    first, second = await queue(client, day, doctor_id, 2)
    refused = await clinic(system, "offers", "accept", second.id)
    assert refused.returncode == 1 and "FAILED_PRECONDITION" in refused.stderr
    await client.cancel(taken.id)
    await offered(client, first.id)
    done = await clinic(system, "offers", "accept", first.id)
    assert done.returncode == 0, done.stderr
    assert f"offer accepted: booking {first.id} goes on" in done.stdout
    assert "BOOKING_CONFIRMED" in done.stdout and "CONFIRMED" in done.stdout


async def test_each_freed_place_goes_to_the_next_in_line_in_order(client: Client, redis):
    doctor_id, day, taken = await full_day(client, capacity=3)
    line = await queue(client, day, doctor_id, 3)
    await client.cancel(taken[1].id)
    await offered(client, line[0].id)
    await client.cancel(taken[2].id)
    await offered(client, line[1].id)
    assert not (await client.get(line[2].id)).HasField("offer_expires_at")
    assert sorted((await holders(redis, day, doctor_id)).values()) == sorted(
        [taken[0].id, line[0].id, line[1].id]
    )
